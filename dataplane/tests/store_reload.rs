//! Reloads: versions in flight stay intact, unchanged files are reused, and
//! truncating a file under a running transfer cannot fault.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bootwave_dataplane::store::{FileStore, StoreError, StoreOptions};
use bootwave_protocol::tftp::{FileData as _, Resolved};

/// Longer than the store's allowance for coarse file timestamps: files older
/// than this are reused by a reload, younger ones are copied again.
const SETTLED: Duration = Duration::from_millis(2100);

/// Bound on every wait for the reader thread to make progress.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(5);

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    std::fs::write(root.join(rel), bytes).expect("write");
}

/// Replaces `rel` the way deploy tools do: write a temporary, rename over.
fn rename_over(root: &Path, rel: &str, bytes: &[u8]) {
    let tmp = root.join(format!(".{rel}.tmp"));
    std::fs::write(&tmp, bytes).expect("write tmp");
    std::fs::rename(&tmp, root.join(rel)).expect("rename");
}

fn current(store: &FileStore, path: &str) -> Vec<u8> {
    match store.lookup(path) {
        Resolved::File(data) => data.bytes().to_vec(),
        other => panic!("{path}: expected a file, got {other:?}"),
    }
}

/// Deterministic contents that differ per `seed` at every position.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn rename_over_keeps_old_version_until_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "ipxe.efi", b"version 1");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    let in_flight = store.file("ipxe.efi").expect("file");
    rename_over(dir.path(), "ipxe.efi", b"version 2, longer");
    assert_eq!(
        current(&store, "ipxe.efi"),
        b"version 1",
        "the map changes only on reload"
    );
    let report = store.reload().expect("reload");
    assert_eq!((report.copied, report.reused), (1, 0));
    assert_eq!(current(&store, "ipxe.efi"), b"version 2, longer");
    assert_eq!(in_flight.bytes(), b"version 1");
}

#[test]
fn reload_reuses_unchanged_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "big.img", &pattern(1 << 20, 1));
    put(dir.path(), "refind.conf", b"timeout 1\n");
    std::thread::sleep(SETTLED);
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    let big = store.file("big.img").expect("big");
    let conf = store.file("refind.conf").expect("conf");

    let report = store.reload().expect("reload");
    assert_eq!((report.copied, report.reused), (0, 2));
    assert!(Arc::ptr_eq(&big, &store.file("big.img").expect("big")));
    assert!(Arc::ptr_eq(
        &conf,
        &store.file("refind.conf").expect("conf")
    ));

    rename_over(dir.path(), "refind.conf", b"timeout 5\n");
    let report = store.reload().expect("reload");
    assert_eq!((report.copied, report.reused), (1, 1));
    assert!(Arc::ptr_eq(&big, &store.file("big.img").expect("big")));
    assert!(!Arc::ptr_eq(
        &conf,
        &store.file("refind.conf").expect("conf")
    ));
    assert_eq!(current(&store, "refind.conf"), b"timeout 5\n");
}

#[test]
fn freshly_changed_files_are_copied_again_once_settled_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "ipxe.efi", b"MZ ipxe");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    let first = store.file("ipxe.efi").expect("file");
    let report = store.reload().expect("reload");
    assert_eq!(
        (report.copied, report.reused),
        (1, 0),
        "changed too recently to trust"
    );
    let second = store.file("ipxe.efi").expect("file");
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(second.bytes(), b"MZ ipxe");
}

#[test]
fn in_place_rewrite_of_same_size_is_noticed() {
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "refind.conf", b"timeout 1\n");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    let mut file = OpenOptions::new()
        .write(true)
        .open(dir.path().join("refind.conf"))
        .expect("open");
    file.write_all(b"timeout 9\n").expect("write");
    drop(file);
    store.reload().expect("reload");
    assert_eq!(current(&store, "refind.conf"), b"timeout 9\n");
}

#[test]
fn deleted_file_is_not_found_after_reload_but_stays_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "ipxe.efi", b"MZ ipxe");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    let in_flight = store.file("ipxe.efi").expect("file");
    std::fs::remove_file(dir.path().join("ipxe.efi")).expect("rm");
    store.reload().expect("reload");
    assert!(matches!(store.lookup("ipxe.efi"), Resolved::NotFound));
    assert_eq!(in_flight.bytes(), b"MZ ipxe");
}

#[test]
fn failed_reload_keeps_previous_map() {
    let parent = tempfile::tempdir().expect("tempdir");
    let root = parent.path().join("tftp");
    std::fs::create_dir(&root).expect("mkdir");
    put(&root, "ipxe.efi", b"MZ ipxe");
    let store = FileStore::open(&root, StoreOptions::default()).expect("load");
    std::fs::remove_dir_all(&root).expect("rm root");
    let err = store.reload().expect_err("root gone");
    assert!(matches!(err, StoreError::Root { .. }), "{err:?}");
    assert_eq!(current(&store, "ipxe.efi"), b"MZ ipxe");
}

/// Truncates and rewrites the source file in place while another thread
/// keeps reading the version loaded before, 50 times over. With a direct
/// mapping of the file this would kill the process with SIGBUS; with a
/// sealed memfd the reader must see the original bytes every time.
#[test]
fn truncating_source_under_a_reader_never_faults() {
    const LEN: usize = 1 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let original = pattern(LEN, 7);
    put(dir.path(), "vmlinuz", &original);
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    let in_flight = store.file("vmlinuz").expect("file");

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (file, stop, reads) = (
            Arc::clone(&in_flight),
            Arc::clone(&stop),
            Arc::clone(&reads),
        );
        let expected = original.clone();
        std::thread::spawn(move || {
            let mut mismatches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Touch every page, as a transfer walking the file would.
                if file.bytes() != expected.as_slice() {
                    mismatches += 1;
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            mismatches
        })
    };

    let path = dir.path().join("vmlinuz");
    for round in 0..50u8 {
        wait_for_progress(&reads);
        let mut file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(0).expect("truncate");
        wait_for_progress(&reads);
        file.write_all(&pattern(LEN / 2, round)).expect("rewrite");
        file.set_len(0).expect("truncate again");
        drop(file);
        store.reload().expect("reload");
        assert_eq!(current(&store, "vmlinuz"), b"", "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    let mismatches = reader.join().expect("reader survived");
    assert_eq!(mismatches, 0);
    assert!(reads.load(Ordering::Relaxed) >= 100);
    assert_eq!(in_flight.bytes(), original.as_slice());
}

/// Waits until the reader has finished at least one more full pass.
fn wait_for_progress(reads: &AtomicU64) {
    let start = reads.load(Ordering::Relaxed);
    let deadline = Instant::now() + PROGRESS_DEADLINE;
    while reads.load(Ordering::Relaxed) < start + 1 {
        assert!(Instant::now() < deadline, "reader made no progress");
        std::thread::yield_now();
    }
}

/// Lookups racing with reloads always get one whole version, never a mix.
#[test]
fn lookups_during_reloads_see_whole_versions() {
    const LEN: usize = 64 << 10;
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "refind_x64.efi", &vec![0u8; LEN]);
    let store = Arc::new(FileStore::open(dir.path(), StoreOptions::default()).expect("load"));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut versions_seen = std::collections::BTreeSet::new();
            let mut lookups = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Resolved::File(data) = store.lookup("refind_x64.efi") else {
                    panic!("file vanished during reload");
                };
                let bytes = data.bytes();
                assert_eq!(bytes.len(), LEN);
                assert!(bytes.iter().all(|&b| b == bytes[0]), "mixed version");
                versions_seen.insert(bytes[0]);
                lookups += 1;
            }
            (versions_seen, lookups)
        })
    };
    for version in 1..=50u8 {
        rename_over(dir.path(), "refind_x64.efi", &vec![version; LEN]);
        store.reload().expect("reload");
    }
    stop.store(true, Ordering::Relaxed);
    let (versions_seen, lookups) = reader.join().expect("reader");
    assert!(lookups > 0);
    assert!(versions_seen.iter().all(|&v| v <= 50));
    assert_eq!(current(&store, "refind_x64.efi"), vec![50u8; LEN]);
}
