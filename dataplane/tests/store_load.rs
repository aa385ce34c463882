//! Loading a TFTP root: names, symlinks, limits.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use bootwave_dataplane::store::{FileStore, StoreError, StoreOptions};
use bootwave_protocol::tftp::{ResolveRequest, Resolved, Resolver};

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

fn resolve(resolver: &impl Resolver, path: &str) -> Resolved {
    resolver.resolve(&ResolveRequest {
        path,
        client: SocketAddr::from((Ipv4Addr::LOCALHOST, 3000)),
        mac: None,
    })
}

fn served(resolver: &impl Resolver, path: &str) -> Vec<u8> {
    match resolve(resolver, path) {
        Resolved::File(data) => data.bytes().to_vec(),
        other => panic!("{path}: expected a file, got {other:?}"),
    }
}

fn is_not_found(resolver: &impl Resolver, path: &str) -> bool {
    matches!(resolve(resolver, path), Resolved::NotFound)
}

fn is_denied(resolver: &impl Resolver, path: &str) -> bool {
    matches!(resolve(resolver, path), Resolved::Denied)
}

/// A root shaped like a PXE → iPXE → rEFInd deployment.
fn boot_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "ipxe.efi", b"MZ ipxe");
    put(dir.path(), "refind.pxe", b"#!ipxe\nchain refind_x64.efi\n");
    put(dir.path(), "efi/refind_x64.efi", b"MZ refind");
    put(dir.path(), "efi/refind.conf", b"timeout 1\n");
    put(dir.path(), "deep/a/b/c.txt", b"deep");
    put(dir.path(), "empty", b"");
    dir
}

#[test]
fn loads_tree_and_serves_exact_names() {
    let dir = boot_tree();
    let store = Arc::new(FileStore::open(dir.path(), StoreOptions::default()).expect("load"));
    let handle = Arc::clone(&store);
    assert_eq!(served(&*store, "ipxe.efi"), b"MZ ipxe");
    assert_eq!(served(&handle, "efi/refind_x64.efi"), b"MZ refind");
    assert_eq!(served(&handle, "efi/refind.conf"), b"timeout 1\n");
    assert_eq!(served(&handle, "deep/a/b/c.txt"), b"deep");
    assert_eq!(served(&handle, "empty"), b"");
    let report = store.report();
    assert_eq!(report.files, 6);
    assert_eq!(report.copied, 6);
    assert_eq!(report.bytes, 7 + 28 + 9 + 10 + 4);
    assert_eq!(report.errors + report.denied + report.skipped_too_many, 0);
}

#[test]
fn missing_names_are_not_found() {
    let dir = boot_tree();
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    for path in [
        "pxelinux.cfg/01-52-54-00-00-00-01",
        "efi",
        "efi/",
        "EFI/refind.conf",
        "IPXE.EFI",
        "",
    ] {
        assert!(is_not_found(&store, path), "{path:?}");
    }
}

#[test]
fn symlinks_inside_root_are_served_and_share_one_version() {
    let dir = boot_tree();
    symlink("efi/refind.conf", dir.path().join("rel-link")).expect("symlink");
    symlink(dir.path().join("ipxe.efi"), dir.path().join("abs-link")).expect("symlink");
    symlink("efi", dir.path().join("efi64")).expect("symlink");
    symlink("../ipxe.efi", dir.path().join("efi/up-link")).expect("symlink");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    assert_eq!(served(&store, "rel-link"), b"timeout 1\n");
    assert_eq!(served(&store, "abs-link"), b"MZ ipxe");
    assert_eq!(served(&store, "efi64/refind_x64.efi"), b"MZ refind");
    assert_eq!(served(&store, "efi/up-link"), b"MZ ipxe");
    let original = store.file("efi/refind.conf").expect("file");
    for alias in ["rel-link", "efi64/refind.conf"] {
        assert!(
            Arc::ptr_eq(&original, &store.file(alias).expect("alias")),
            "{alias}"
        );
    }
    assert_eq!(store.report().copied, 6, "aliases are not copied again");
}

#[test]
fn root_given_through_a_symlink_is_resolved() {
    let dir = boot_tree();
    let parent = tempfile::tempdir().expect("tempdir");
    let link = parent.path().join("tftp");
    symlink(dir.path(), &link).expect("symlink");
    let store = FileStore::open(&link, StoreOptions::default()).expect("load");
    assert_eq!(served(&store, "efi/refind.conf"), b"timeout 1\n");
}

#[test]
fn symlinks_leaving_root_are_denied() {
    let outside = tempfile::tempdir().expect("tempdir");
    put(outside.path(), "secret", b"root:x:0:0");
    put(outside.path(), "dir/secret", b"key");
    let dir = boot_tree();
    symlink(outside.path().join("secret"), dir.path().join("abs-out")).expect("symlink");
    let rel = Path::new("..")
        .join(outside.path().file_name().expect("name"))
        .join("secret");
    symlink(&rel, dir.path().join("rel-out")).expect("symlink");
    symlink(outside.path().join("dir"), dir.path().join("dir-out")).expect("symlink");
    symlink("/etc/passwd", dir.path().join("efi/passwd")).expect("symlink");
    symlink("does-not-exist", dir.path().join("dangling")).expect("symlink");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    for path in [
        "abs-out",
        "rel-out",
        "dir-out",
        "dir-out/secret",
        "efi/passwd",
    ] {
        assert!(is_denied(&store, path), "{path}");
    }
    assert!(is_not_found(&store, "dangling"));
    assert_eq!(store.report().denied, 4);
    assert_eq!(served(&store, "ipxe.efi"), b"MZ ipxe");
}

#[test]
fn directory_loops_are_not_followed() {
    let dir = boot_tree();
    symlink(".", dir.path().join("self")).expect("symlink");
    symlink("../..", dir.path().join("deep/a/up")).expect("symlink");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    let report = store.report();
    assert_eq!(report.loops, 2, "{report:?}");
    assert_eq!(report.files, 6);
    assert!(is_not_found(&store, "self/ipxe.efi"));
    assert!(is_not_found(&store, "deep/a/up/ipxe.efi"));
}

#[test]
fn odd_names_are_exact_keys_and_never_escape() {
    let outside = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::Builder::new()
        .tempdir_in(outside.path())
        .expect("tempdir");
    put(outside.path(), "secret", b"outside");
    put(dir.path(), "a b", b"space");
    put(dir.path(), "x\\y", b"backslash");
    put(dir.path(), "%2e%2e", b"percent");
    put(dir.path(), "..x", b"dots");
    put(dir.path(), "efi/refind.conf", b"conf");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    assert_eq!(served(&store, "a b"), b"space");
    assert_eq!(served(&store, "x\\y"), b"backslash");
    assert_eq!(served(&store, "%2e%2e"), b"percent");
    assert_eq!(served(&store, "..x"), b"dots");
    for path in [
        "../secret",
        "/efi/refind.conf",
        "efi/../efi/refind.conf",
        "efi//refind.conf",
        "./efi/refind.conf",
        "efi\\refind.conf",
        "efi/refind.conf\0",
        "x/y",
    ] {
        assert!(is_not_found(&store, path), "{path:?}");
    }
}

#[test]
fn file_count_limit_skips_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..5 {
        put(dir.path(), &format!("f{i}"), b"x");
    }
    let options = StoreOptions {
        max_files: 3,
        ..StoreOptions::default()
    };
    let store = FileStore::open(dir.path(), options).expect("load");
    let report = store.report();
    assert_eq!(
        (report.files, report.skipped_too_many),
        (3, 2),
        "{report:?}"
    );
    let found = (0..5)
        .filter(|i| matches!(resolve(&store, &format!("f{i}")), Resolved::File(_)))
        .count();
    assert_eq!(found, 3);
}

#[test]
fn size_limits_deny_and_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    put(dir.path(), "big", &[1; 11]);
    put(dir.path(), "a", &[2; 10]);
    put(dir.path(), "b", &[3; 10]);
    put(dir.path(), "c", &[4; 10]);
    let options = StoreOptions {
        max_file_size: 10,
        max_total_bytes: 25,
        ..StoreOptions::default()
    };
    let store = FileStore::open(dir.path(), options).expect("load");
    let report = store.report();
    assert_eq!(report.skipped_too_large, 1, "{report:?}");
    assert_eq!(report.skipped_over_budget, 1, "{report:?}");
    assert_eq!(report.bytes, 20);
    assert!(is_denied(&store, "big"));
    let served_small = ["a", "b", "c"]
        .iter()
        .filter(|p| matches!(resolve(&store, p), Resolved::File(_)))
        .count();
    assert_eq!(served_small, 2);
}

#[test]
fn depth_limit_stops_descent() {
    let dir = boot_tree();
    let options = StoreOptions {
        max_depth: 2,
        ..StoreOptions::default()
    };
    let store = FileStore::open(dir.path(), options).expect("load");
    assert_eq!(store.report().skipped_too_deep, 1);
    assert!(is_not_found(&store, "deep/a/b/c.txt"));
    assert_eq!(served(&store, "efi/refind.conf"), b"timeout 1\n");
}

/// Every level links twice to the next: 2^16 paths unless the walk is bounded.
#[test]
fn directory_limit_bounds_a_tree_of_aliases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut level = dir.path().to_path_buf();
    for i in 0..16 {
        let next = level.join(format!("l{i}"));
        std::fs::create_dir(&next).expect("mkdir");
        symlink(format!("l{i}"), level.join("a")).expect("symlink");
        symlink(format!("l{i}"), level.join("b")).expect("symlink");
        level = next;
    }
    put(&level, "leaf", b"leaf");
    let options = StoreOptions {
        max_dirs: 100,
        max_depth: 64,
        ..StoreOptions::default()
    };
    let store = FileStore::open(dir.path(), options).expect("load");
    let report = store.report();
    assert!(report.skipped_dirs > 0, "{report:?}");
    assert!(report.files <= 100, "{report:?}");
}

#[test]
fn non_utf8_names_are_skipped() {
    let dir = boot_tree();
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff");
    std::fs::write(dir.path().join(name), b"x").expect("write");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    assert_eq!(store.report().skipped_non_utf8, 1);
    assert_eq!(store.report().files, 6);
}

#[test]
fn fifos_and_sockets_are_skipped_without_blocking() {
    let dir = boot_tree();
    let fifo =
        std::ffi::CString::new(dir.path().join("fifo").as_os_str().as_bytes()).expect("path");
    // Safety (test): mkfifo with a NUL-terminated path that outlives the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    symlink("fifo", dir.path().join("fifo-link")).expect("symlink");
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).expect("bind");
    let store = FileStore::open(dir.path(), StoreOptions::default()).expect("load");
    assert_eq!(store.report().skipped_special, 3);
    for path in ["fifo", "fifo-link", "sock"] {
        assert!(is_not_found(&store, path), "{path}");
    }
}

#[test]
fn missing_root_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err =
        FileStore::open(dir.path().join("nope"), StoreOptions::default()).expect_err("no root");
    assert!(matches!(err, StoreError::Root { .. }), "{err:?}");
}
