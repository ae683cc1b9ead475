package testenv

import "testing"

// TestLangRootfsHasToolchains checks that the image the lang tests run in has
// the go, node, rustc and cargo programs the profiles call.
func TestLangRootfsHasToolchains(t *testing.T) {
	tarballHas(t, LangRootfs(t), "./usr/bin/go", "./usr/bin/node", "./usr/bin/rustc", "./usr/bin/cargo")
}
