//! Reloading the route table of a running gateway.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;

use sixgate_app::Gateway;
use sixgate_core::Domain;
use sixgate_route::Route;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sixgate-reload-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &std::path::Path, listen: &str, extra: &str) -> sixgate_app::config::Config {
    let text = format!(
        r#"
[xmpp]
listen = ["{listen}"]
[dns]
nameservers = ["127.0.0.1:9"]
[tls]
trust_system_roots = false
[[local_domains]]
domain = "gw.example"
delivery = "echo"
{extra}
"#
    );
    sixgate_app::config::parse(&text, dir).unwrap()
}

#[tokio::test]
async fn reload_swaps_routes_and_refuses_restart_only_changes() {
    let dir = scratch("swap");
    let partner = Domain::parse("partner.example").unwrap();
    let mut gateway = Gateway::start(config(&dir, "127.0.0.1:0", ""))
        .await
        .unwrap();
    assert_eq!(gateway.route(&partner), Route::Deny);

    let open = r#"
[[remote_domains]]
domain = "partner.example"
route = "xmpp"
require_valid_certificate = false
"#;
    gateway.reload(config(&dir, "127.0.0.1:0", open)).unwrap();
    let Route::Xmpp(peer) = gateway.route(&partner) else {
        panic!("partner.example should be routed to XMPP now");
    };
    assert!(!peer.require_valid_certificate);

    // A new listen address needs a restart: refused, and the running table stays.
    let error = gateway.reload(config(&dir, "127.0.0.1:1", "")).unwrap_err();
    assert!(error.to_string().contains("[xmpp]"), "{error}");
    assert!(matches!(gateway.route(&partner), Route::Xmpp(_)));

    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
