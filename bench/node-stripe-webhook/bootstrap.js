// A minimal Lambda Runtime API client, doing what the managed Node.js runtime does around a handler:
// load the handler (init), then loop: GET the next invocation, call the handler, POST its result
// (or the error). bench/coldstart starts it as `node bootstrap.js` with AWS_LAMBDA_RUNTIME_API set.
'use strict';

const http = require('node:http');

const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const request = http.request({ host, port, method, path: `/2018-06-01/runtime${path}`, agent, headers }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

function errorBody(err) {
  return JSON.stringify({ errorType: err && err.name ? err.name : 'Error', errorMessage: String(err && err.message ? err.message : err) });
}

async function main() {
  let handler;
  try {
    ({ handler } = require('./handler.js'));
  } catch (err) {
    await call('POST', '/init/error', errorBody(err), { 'lambda-runtime-function-error-type': 'Runtime.InitError' });
    process.exit(1);
  }
  for (;;) {
    const next = await call('GET', '/invocation/next');
    const id = next.headers['lambda-runtime-aws-request-id'];
    try {
      const result = await handler(JSON.parse(next.body), { awsRequestId: id });
      await call('POST', `/invocation/${id}/response`, JSON.stringify(result), { 'content-type': 'application/json' });
    } catch (err) {
      await call('POST', `/invocation/${id}/error`, errorBody(err), { 'lambda-runtime-function-error-type': 'Runtime.UnhandledError' });
    }
  }
}

main();
