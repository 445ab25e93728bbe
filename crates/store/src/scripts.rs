//! The Lua scripts, each prefixed with the shared prelude and invoked by SHA
//! (redis-rs loads a script again when the server answers NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        /// Every script Tether runs, compiled once per process.
        #[derive(Debug)]
        pub(crate) struct Scripts { $(pub(crate) $name: Script,)* }

        pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
            $($name: Script::new(concat!(
                include_str!("../lua/common.lua"),
                include_str!("../lua/flow.lua"),
                include_str!(concat!("../lua/", stringify!($name), ".lua"))
            )),)*
        });

        #[cfg(feature = "test-support")]
        impl Scripts {
            /// (name, script) pairs, for suites that run them all.
            pub(crate) fn all(&self) -> Vec<(&'static str, &Script)> {
                vec![$((stringify!($name), &self.$name)),*]
            }
        }
    };
}

scripts!(
    enqueue,
    claim,
    renew,
    progress,
    checkpoint,
    finish,
    release,
    cancel,
    reap,
    promote,
    retry_dead,
    expire,
    set_labels,
    watch,
    consistency,
    forget,
    deadline,
    snooze,
    settings,
    unhold,
);
