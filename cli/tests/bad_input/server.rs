//! The real `crm serve` binary for the bad-input suite: started on a free port over a temporary data
//! directory with its stderr in a file (read back for panics), stopped by SIGTERM, and its embedded
//! store read item by item once it has stopped (the redb file is locked while it runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

/// The operator key the suite starts the server with.
pub const OPERATOR: &str = "operator-token-for-bad-input-0123456789";

pub struct Server {
    child: Child,
    pub addr: String,
    log: PathBuf,
}

impl Server {
    /// Starts `crm serve` over `data_dir`, with Piano's API at `piano_base`; its stderr goes to `log`
    /// (appended, so restarts add to it).
    pub fn start(data_dir: &Path, log: &Path, piano_base: &str) -> Server {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open the server log");
        let already = std::fs::read_to_string(log).unwrap_or_default().len();
        let child = Command::new(env!("CARGO_BIN_EXE_crm"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("CRM_ADMIN_TOKEN", OPERATOR)
            // Stripe is never reachable: a request that got as far as calling it would fail loudly. Piano
            // is the suite's fake, which accepts no token and counts what it is asked (bad_input/public.rs).
            .env("CRM_STRIPE_API_BASE", "http://127.0.0.1:9")
            .env("CRM_PIANO_API_BASE", piano_base)
            // Webhook registration then builds its URL from the request's Host (bad_input/admin.rs).
            .env_remove("CRM_PUBLIC_BASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start crm serve");
        let mut server = Server { child, addr: String::new(), log: log.to_owned() };
        for _ in 0..600 {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let printed = text[already..].lines().find_map(|l| l.strip_prefix("listening on http://"));
            if let Some(addr) = printed {
                server.addr = addr.trim().to_owned();
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("crm serve exited with {status}: {}", &text[already..]);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("crm serve printed no address: {}", std::fs::read_to_string(log).unwrap_or_default());
    }

    /// What the server wrote on stderr so far (every run over this log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for a graceful exit (which closes the store file).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "crm serve exited with {status}: {}", self.log());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("crm serve did not stop on SIGTERM");
    }
}

// The embedded adapter's two tables (shared/src/store/embedded.rs). `snapshot` refuses a file with any
// other table, so a table added there cannot escape the comparison unnoticed.
const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi1");

/// Every item and index entry of a stopped server's store, keyed by table and key, as raw bytes.
pub fn snapshot(data_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let db = redb::Database::open(data_dir.join("crm.redb")).expect("open the stopped server's store");
    let txn = db.begin_read().expect("read transaction");
    let mut tables: Vec<String> = txn.list_tables().expect("list tables").map(|t| t.name().to_owned()).collect();
    tables.sort();
    assert_eq!(tables, ["gsi1", "items"], "the store has tables this comparison does not read");
    let mut all = BTreeMap::new();
    for row in txn.open_table(ITEMS).expect("items").iter().expect("iterate items") {
        let (key, value) = row.expect("an item");
        let (pk, sk) = key.value();
        all.insert(format!("items {pk} {sk}"), value.value().to_vec());
    }
    for row in txn.open_table(GSI1).expect("gsi1").iter().expect("iterate gsi1") {
        let (key, _) = row.expect("an index entry");
        let (gpk, gsk, pk, sk) = key.value();
        all.insert(format!("gsi1 {gpk} {gsk} -> {pk} {sk}"), Vec::new());
    }
    all
}
