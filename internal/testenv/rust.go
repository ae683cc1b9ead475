package testenv

import "testing"

// RustPackages are the packages of RustLayout's rootfs: rustc 1.63 and
// cargo (the Rust profile's toolchain in Debian bookworm), git and patch,
// and no Python.
var RustPackages = []string{"git", "patch", "rustc", "cargo"}

// RustLayout is NodeLayout with RustPackages (about 300 MB of packages).
func RustLayout(t *testing.T) string { return toolchainLayout(t, "rust", RustPackages) }
