//! Compiles the XDP program (`src/bpf/weir.bpf.c`) with clang into
//! `$OUT_DIR/weir.bpf.o` and generates its libbpf-rs skeleton
//! (`$OUT_DIR/weir.skel.rs`, included by `src/prog.rs`). The object is
//! embedded in the skeleton, so the binary needs no file at run time.
//!
//! Needs clang (with the BPF target) and the Linux UAPI headers
//! (`linux-libc-dev`). libbpf's own headers (`bpf/bpf_helpers.h`) come
//! with libbpf-cargo. No vmlinux.h: an XDP program only needs UAPI types.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const SRC: &str = "src/bpf/weir.bpf.c";
const INSTALL_HINT: &str = "install the eBPF toolchain: `apt-get install clang llvm libelf-dev` \
     (scripts/test.sh does this on a fresh machine), or point BPF_CLANG at a clang with the bpf target";

fn fail(msg: &str) -> ! {
    eprintln!("error: weir-xdp build: {msg}");
    exit(1)
}

fn main() {
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=src/bpf");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");

    let clang = env::var_os("BPF_CLANG").unwrap_or_else(|| OsString::from("clang"));
    // libbpf-cargo's own error for a missing compiler is a bare "failed to
    // execute"; check first so the operator learns what to install.
    match Command::new(&clang).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => fail(&format!(
            "`{} --version` failed ({}): {}\n{INSTALL_HINT}",
            Path::new(&clang).display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => fail(&format!(
            "cannot run `{}` ({e}): clang is needed to compile the XDP program {SRC}\n{INSTALL_HINT}",
            Path::new(&clang).display()
        )),
    }

    let out_dir = match env::var_os("OUT_DIR") {
        Some(d) => PathBuf::from(d),
        None => fail("OUT_DIR is not set (not run by cargo?)"),
    };

    // `asm/types.h` (pulled in by linux/types.h) lives in the multiarch
    // directory on Debian/Ubuntu; clang -target bpf does not search it.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned());
    let multiarch = match arch.as_str() {
        "x86" => "i386-linux-gnu".to_owned(),
        "arm" => "arm-linux-gnueabihf".to_owned(),
        other => format!("{other}-linux-gnu"),
    };
    let include_multiarch = format!("/usr/include/{multiarch}");
    if !Path::new("/usr/include/linux/bpf.h").exists() {
        fail(&format!(
            "/usr/include/linux/bpf.h not found: install the Linux UAPI headers \
             (`apt-get install linux-libc-dev`)\n{INSTALL_HINT}"
        ));
    }

    let obj = out_dir.join("weir.bpf.o");
    let skel = out_dir.join("weir.skel.rs");
    let result = libbpf_cargo::SkeletonBuilder::new()
        .source(SRC)
        .obj(&obj)
        .clang(&clang)
        .clang_args([
            OsString::from("-I/usr/include"),
            OsString::from(format!("-I{include_multiarch}")),
            OsString::from("-Wall"),
            OsString::from("-Werror"),
        ])
        .build_and_generate(&skel);
    if let Err(e) = result {
        fail(&format!(
            "compiling {SRC} or generating its skeleton failed: {e:#}\n\
             (if clang lacks the bpf target or headers are missing: {INSTALL_HINT})"
        ));
    }
}
