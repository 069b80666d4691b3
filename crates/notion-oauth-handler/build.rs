//! Asks the linker to place side by side the functions the server runs (`link-order.txt`, made
//! by `packaging/link-order`), in release builds for Linux.
//!
//! Why: an idle server's memory is mostly its own code. Start-up runs a few thousand functions
//! spread over the whole 13.6 MB of machine code, and for each page it touches the kernel maps
//! the 64 KiB around it (fault-around), so 83 % of the code was resident before the first
//! request, and serving touched the rest. Placed together, the functions that run fill about
//! 4 MB. docs/BENCHMARKS.md has the measurements.
//!
//! The list names functions as the linker sees them. A name the build no longer defines is
//! skipped, so a stale list costs memory, never correctness. A linker that does not take
//! `--symbol-ordering-file` (lld, which rustc links with on x86-64 Linux, and mold do; GNU ld
//! does not) is found by linking an empty program first, and the list is then left out with a
//! warning.
//! `NOH_LINK_ORDER=off` leaves it out too.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const LIST: &str = "link-order.txt";
const BINARY: &str = "notion-oauth-handler";

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-env-changed=NOH_LINK_ORDER");
    let wanted = env::var("PROFILE").is_ok_and(|p| p == "release")
        && env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux")
        && !env::var("NOH_LINK_ORDER").is_ok_and(|v| v == "off");
    let list = Path::new(LIST);
    if !wanted || !list.is_file() {
        return;
    }
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let Ok(list) = list.canonicalize() else {
        return;
    };
    let args = [
        format!("-Wl,--symbol-ordering-file={}", list.display()),
        "-Wl,--no-warn-symbol-ordering".to_owned(),
    ];
    match linker_takes(&out_dir, &args) {
        Ok(()) => {
            for arg in args {
                println!("cargo:rustc-link-arg-bin={BINARY}={arg}");
            }
        }
        Err(why) => println!(
            "cargo:warning=linking without {LIST} (the binary works, its idle memory is a few \
             MB larger): {why}"
        ),
    }
}

/// Links an empty program with this build's compiler, target, linker and flags plus `args`.
fn linker_takes(out_dir: &Path, args: &[String]) -> Result<(), String> {
    let source = out_dir.join("link-order-probe.rs");
    std::fs::write(&source, "fn main() {}\n").map_err(|e| format!("cannot write a probe: {e}"))?;
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let mut command = Command::new(rustc);
    command.arg("--crate-type=bin").arg("-o").arg(out_dir.join("link-order-probe")).arg(&source);
    if let Some(target) = env::var_os("TARGET") {
        command.arg("--target").arg(target);
    }
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        command.arg("-C").arg(format!("linker={}", linker.to_string_lossy()));
    }
    if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
        command.args(flags.split('\x1f').filter(|flag| !flag.is_empty()));
    }
    for arg in args {
        command.arg("-C").arg(format!("link-arg={arg}"));
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the compiler: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().find(|line| line.contains("error")).unwrap_or("the link failed");
    Err(format!("the linker refused --symbol-ordering-file ({})", first.trim()))
}
