//! The queue scripts, as one library of Redis functions (`FUNCTION LOAD`).
//!
//! A script sent with `EVALSHA` runs its whole text at every call: the shared prelude
//! alone (`common.lua`, `flow.lua`: some forty local functions, each a closure made
//! anew) cost more Redis CPU than the commands of a heartbeat. A library's top level
//! runs once, when it is loaded; each call (`FCALL`) runs only its function's body.
//!
//! The library's name carries a hash of its text, so processes of two Tether versions
//! (a rolling upgrade) each call their own functions. A server that does not have the
//! library (a new one, a restart without persistence, a `FUNCTION FLUSH`) answers
//! "Function not found": the call loads it there and is sent again.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, RedisResult, ToRedisArgs};

pub(crate) use crate::error::is_missing_function;

/// One function of the library.
#[derive(Debug)]
pub(crate) struct Function {
    name: String,
}

impl Function {
    /// A call of this function with `keys`, to which the caller adds arguments.
    pub(crate) fn call(&self, keys: &[String]) -> Call<'_> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&self.name).arg(keys.len()).arg(keys);
        Call {
            function: self,
            cmd,
        }
    }
}

/// An `FCALL` being built: its keys are given up front, its arguments appended.
pub(crate) struct Call<'a> {
    function: &'a Function,
    cmd: Cmd,
}

impl Call<'_> {
    pub(crate) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// The complete command, for a pipeline.
    pub(crate) fn command(&self) -> &Cmd {
        &self.cmd
    }

    /// Sends the call; loads the library first where the server lacks it.
    pub(crate) async fn invoke_async<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self.cmd.query_async(conn).await {
            Err(e) if is_missing_function(&e) => {
                tracing::debug!(function = %self.function.name, "loading the function library");
                load_library(conn).await?;
                self.cmd.query_async(conn).await
            }
            other => other,
        }
    }
}

/// `FUNCTION LOAD REPLACE` of the library (on a cluster, on every master).
pub(crate) async fn load_library(conn: &mut impl ConnectionLike) -> RedisResult<()> {
    let _: redis::Value = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(&SCRIPTS.library)
        .query_async(conn)
        .await?;
    Ok(())
}

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        /// Every queue script, as functions of one library built once per process.
        #[derive(Debug)]
        pub(crate) struct Scripts {
            $(pub(crate) $name: Function,)*
            /// The library's source, as `FUNCTION LOAD` takes it.
            library: String,
        }

        pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| {
            let bodies: &[(&str, &str)] = &[
                $((stringify!($name), include_str!(concat!("../lua/", stringify!($name), ".lua"))),)*
            ];
            let (library, version) = library(bodies);
            let function = |name: &str| Function { name: format!("tether_{version}_{name}") };
            Scripts {
                $($name: function(stringify!($name)),)*
                library,
            }
        });

        #[cfg(feature = "test-support")]
        impl Scripts {
            /// The name of every script, for suites that run them all.
            pub(crate) fn names(&self) -> Vec<&'static str> {
                vec![$(stringify!($name)),*]
            }
        }
    };
}

/// The library's text and its version (a hash of its sources).
fn library(bodies: &[(&str, &str)]) -> (String, String) {
    const PRELUDE: [&str; 4] = [
        include_str!("../lua/numbers.lua"),
        include_str!("../lua/common.lua"),
        include_str!("../lua/flow.lua"),
        include_str!("../lua/tasks.lua"),
    ];
    let mut sources = PRELUDE.concat();
    for (name, body) in bodies {
        sources.push_str(name);
        sources.push_str(body);
    }
    // SHA-1 of the sources (redis-rs computes script hashes with it already).
    let version = redis::Script::new(&sources).get_hash()[..12].to_owned();
    let mut library = format!("#!lua name=tether_{version}\n");
    library.extend(PRELUDE);
    library
        .push_str("local function begin(keys, args) begin_common(keys, args) begin_flow() end\n");
    for (name, body) in bodies {
        // Each script's text becomes the body of its function, unchanged: its
        // top-level locals are the call's, and its `return` ends the call.
        library.push_str(&format!(
            "redis.register_function('tether_{version}_{name}', function(keys, args)\nbegin(keys, args)\n{body}\nend)\n"
        ));
    }
    (library, version)
}

scripts!(
    renew,
    progress,
    checkpoint,
    expire,
    set_labels,
    watch,
    enqueue,
    claim,
    finish,
    release,
    cancel,
    reap,
    promote,
    retry_dead,
    consistency,
    forget,
    deadline,
    snooze,
    settings,
    unhold,
    drive,
    lapse,
    adopt,
    delete,
    mend,
    waiting_heads,
);
