//! The Lua scripts, each prefixed with the shared prelude and invoked by SHA
//! (redis-rs loads a script again when the server answers NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

macro_rules! scripts {
    (
        plain: $($plain:ident),* $(,)?;
        with_flow: $($flowing:ident),* $(,)?
    ) => {
        /// Every script Tether runs, compiled once per process.
        #[derive(Debug)]
        pub(crate) struct Scripts {
            $(pub(crate) $plain: Script,)*
            $(pub(crate) $flowing: Script,)*
        }

        // Every call runs its whole prelude (each `local function` is a closure made
        // anew), so the scripts that never make a job ready nor end a lease go without
        // flow.lua: heartbeats and progress reports are the most frequent calls.
        pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
            $($plain: Script::new(concat!(
                include_str!("../lua/common.lua"),
                include_str!(concat!("../lua/", stringify!($plain), ".lua"))
            )),)*
            $($flowing: Script::new(concat!(
                include_str!("../lua/common.lua"),
                include_str!("../lua/flow.lua"),
                include_str!(concat!("../lua/", stringify!($flowing), ".lua"))
            )),)*
        });

        #[cfg(feature = "test-support")]
        impl Scripts {
            /// (name, script) pairs, for suites that run them all.
            pub(crate) fn all(&self) -> Vec<(&'static str, &Script)> {
                vec![$((stringify!($plain), &self.$plain),)* $((stringify!($flowing), &self.$flowing)),*]
            }
        }
    };
}

scripts!(
    plain: renew, progress, checkpoint, expire, set_labels, watch;
    with_flow: enqueue, claim, finish, release, cancel, reap, promote, retry_dead, consistency,
        forget, deadline, snooze, settings, unhold,
);
