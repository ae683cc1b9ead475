package stages

import (
	"slices"
	"sort"
	"testing"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
)

// Every compiled-in file that shapes an output belongs to an asset, and
// exactly the kinds that read it declare it (a kind that read one without
// declaring it would fail in the end-to-end tests: Asset.ReadFile refuses
// undeclared reads inside a node). The build package's tests show that a
// declared asset's content is part of the node key, so editing mutate.py or
// a playground prompt re-runs exactly these kinds.
func TestAssetsAreDeclaredByTheKindsThatReadThem(t *testing.T) {
	want := map[*build.Asset][]string{
		mutateAsset:       {"derive_testgen", "inject_bugs", "stub_tasks"},
		playgroundPrompts: {"decompose", "derive_fix", "derive_reproduce", "develop", "propose_projects", "scaffold"},
		// rollout carries the prompt texts it uses in its params instead
		// (they may come from a recipe's prompts directory).
		agent.PromptAsset: {"derive_reproduce"},
	}
	for a, kinds := range want {
		var got []string
		for _, k := range build.Kinds() {
			if slices.Contains(k.Assets, a) {
				got = append(got, k.Name)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, kinds) {
			t.Errorf("asset %s is declared by %v, want %v", a.Name(), got, kinds)
		}
	}
	if got := mutateAsset.Paths(); !slices.Equal(got, []string{"py/mutate.py"}) {
		t.Errorf("mutate asset holds %v", got)
	}
	if n := len(playgroundPrompts.Paths()); n < 10 {
		t.Errorf("playground prompt asset holds %d files", n)
	}
}
