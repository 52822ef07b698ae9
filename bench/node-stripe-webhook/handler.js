// The Stripe webhook written the way most Node.js teams write it: the `stripe` package checks the
// signature (stripe.webhooks.constructEvent), then @aws-sdk/client-sqs queues the raw event. It is
// bench/coldstart's point of comparison for the Rust stripe-webhook (which also reads the
// publication's settings from DynamoDB, so it does more per event than this one).
'use strict';

const Stripe = require('stripe');
const { SQSClient, SendMessageCommand } = require('@aws-sdk/client-sqs');

// Created at init, as Lambda guides advise, so warm invocations reuse the clients.
const stripe = new Stripe(process.env.STRIPE_SECRET_KEY);
const sqs = new SQSClient({});

exports.handler = async (event) => {
  const body = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  let stripeEvent;
  try {
    stripeEvent = stripe.webhooks.constructEvent(body, event.headers['stripe-signature'], process.env.STRIPE_WEBHOOK_SECRET);
  } catch (err) {
    return { statusCode: 400, body: JSON.stringify({ error: err.message }) };
  }
  await sqs.send(new SendMessageCommand({ QueueUrl: process.env.EVENTS_QUEUE_URL, MessageBody: body }));
  console.log(JSON.stringify({ level: 'info', message: 'Stripe event queued', eventId: stripeEvent.id, type: stripeEvent.type }));
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ received: true }) };
};
