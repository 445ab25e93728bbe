//! The process's signals. Only the binary listens for them: the libraries stop
//! when the `CancellationToken` they were given is cancelled.

use tokio_util::sync::CancellationToken;

/// A token cancelled at the first SIGTERM or SIGINT; `note` is logged when it is.
pub(crate) fn shutdown_on_signal(note: &'static str) -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("{note}");
        trigger.cancel();
    });
    token
}
