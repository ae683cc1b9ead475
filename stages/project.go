package stages

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

//go:embed py/project.py
var projectFS embed.FS

// projectAsset is stages/py/project.py, which reads a project's layout and
// pytest configuration inside the sandbox (see its doc string).
var projectAsset = build.NewAsset("stages/py/project.py", projectFS)

// projectInfo is what project.py prints.
type projectInfo struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	ImportRoots []string `json:"import_roots"`
	Config      string   `json:"config"`
	TestPaths   []string `json:"testpaths"`
	TestDirs    []string `json:"test_dirs"`
	Addopts     []string `json:"addopts"`
	Site        string   `json:"site"`
}

// probeProject runs project.py on tree in the base image.
func probeProject(ctx context.Context, c *build.Call, runner *sandbox.Runner, base schema.Image, tree cache.Digest) (projectInfo, error) {
	var info projectInfo
	script, err := projectAsset.ReadFile(ctx, "py/project.py")
	if err != nil {
		return info, err
	}
	res, err := runner.Run(ctx, sandbox.Spec{
		Image: base, Workspace: tree, Dir: agent.Workdir, Limits: SandboxLimits(c),
		Argv: []string{"python3", "-", agent.Workdir}, Env: agent.BashEnv, Stdin: script,
	})
	if err != nil {
		return info, err
	}
	if res.ExitCode != 0 || res.LimitHit != "" {
		return info, fmt.Errorf("project.py exited %d (limit %q): %s", res.ExitCode, res.LimitHit, tailText(string(res.Stderr), 2000))
	}
	if err := json.Unmarshal(res.Stdout, &info); err != nil {
		return info, fmt.Errorf("project.py printed no valid JSON: %v", err)
	}
	return info, nil
}

var distName = regexp.MustCompile(`[^A-Za-z0-9.]+`)

// installTree is what `pip install -e .` leaves in site-packages for a
// pure-Python project, made without pip, a build backend or the network:
// a .pth file putting the project's import roots (under /testbed) on
// sys.path, and a minimal .dist-info so that importlib.metadata finds the
// distribution's name and version. It is zero when there is nothing to
// install (no import root and no name).
//
// Compiled extensions, entry points and dependencies are not installed;
// dependencies come from the environment's Debian packages.
func installTree(store *cache.Store, info projectInfo) (cache.Digest, error) {
	if len(info.ImportRoots) == 0 && info.Name == "" {
		return cache.Digest{}, nil
	}
	name := distName.ReplaceAllString(info.Name, "_")
	if name == "" {
		name = "project"
	}
	files := map[string]string{}
	var pth strings.Builder
	for _, r := range info.ImportRoots {
		pth.WriteString(path.Join(agent.Workdir, r) + "\n")
	}
	files["__dsbuild__"+name+".pth"] = pth.String()
	if info.Name != "" {
		version := distName.ReplaceAllString(info.Version, "_")
		if version == "" {
			version = "0"
		}
		di := name + "-" + version + ".dist-info/"
		files[di+"METADATA"] = fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", info.Name, info.Version)
		files[di+"INSTALLER"] = "dsbuild\n"
		files[di+"RECORD"] = ""
	}
	changes := map[string]*cache.TreeEntry{}
	for f, text := range files {
		d, err := store.Put([]byte(text))
		if err != nil {
			return cache.Digest{}, err
		}
		changes[f] = &cache.TreeEntry{Type: cache.TypeFile, Size: int64(len(text)), Digest: d}
	}
	return patch.Edit(store, cache.Digest{}, changes)
}

var (
	noModule       = regexp.MustCompile(`(?:ModuleNotFoundError|ImportError): No module named '([^']+)'`)
	cannotImport   = regexp.MustCompile(`ImportError: cannot import name .*`)
	fixtureMissing = regexp.MustCompile(`fixture '([^']+)' not found`)
	usageError     = regexp.MustCompile(`(?m)^\S*: error: (.*)$`)
	collecting     = regexp.MustCompile(`(?m)^_{3,} ERROR collecting (\S+) _{3,}$`)
	errorLine      = regexp.MustCompile(`(?m)^E   +(\w+(?:Error|Exception)\b.*)$`)
)

// firstCause names the first real cause of a failed test run from its
// output: a module that cannot be imported (with the Debian package that
// would provide it), a missing fixture, a pytest usage error (an option from
// addopts whose plugin is missing), the first collection error; "" when
// nothing is recognised.
func firstCause(output string) string {
	if m := noModule.FindStringSubmatch(output); m != nil {
		top, _, _ := strings.Cut(m[1], ".")
		return fmt.Sprintf("ModuleNotFoundError: No module named '%s' (the Debian package %s may provide it: add it to the environment's packages)", m[1], debianPackage(top))
	}
	if m := cannotImport.FindString(output); m != "" {
		return clip(strings.TrimSpace(m))
	}
	if m := fixtureMissing.FindStringSubmatch(output); m != nil {
		return fmt.Sprintf("fixture '%s' not found (a pytest plugin the environment lacks?)", m[1])
	}
	if m := usageError.FindStringSubmatch(output); m != nil && strings.Contains(output, "usage:") {
		return "pytest usage error: " + clip(strings.TrimSpace(m[1])) + " (addopts naming a plugin the environment lacks?)"
	}
	if m := collecting.FindStringSubmatch(output); m != nil {
		cause := "collection error in " + m[1]
		if e := errorLine.FindStringSubmatch(output); e != nil {
			cause += ": " + clip(strings.TrimSpace(e[1]))
		}
		return cause
	}
	return ""
}

var (
	pluginImport    = regexp.MustCompile(`Error importing plugin "([^"]+)"`)
	unrecognizedArg = regexp.MustCompile(`(?m)error: unrecognized arguments: (.*)$`)
	missingRequired = regexp.MustCompile(`Missing required plugins: (.*)`)
)

// pluginOptions finds in the output of a pytest run that stopped before
// collecting (exit 4, or an import error of a -p plugin) the options of
// addopts that name plugins the environment lacks: "-p NAME" of a plugin
// that cannot be imported, and options that pytest did not recognise
// (--cov=pkg, -n auto: their plugin is not installed) with the value that
// follows an option given without "=". It returns addopts without them and
// the dropped options; dropped is empty when the output names none of
// addopts (the error is somewhere else), and required is true when
// pytest refused to start for missing required_plugins.
func pluginOptions(addopts []string, output string) (kept, dropped []string, required bool) {
	drop := make([]bool, len(addopts))
	for _, m := range pluginImport.FindAllStringSubmatch(output, -1) {
		for i, a := range addopts {
			switch {
			case a == "-p" && i+1 < len(addopts) && addopts[i+1] == m[1]:
				drop[i], drop[i+1] = true, true
			case a == "-p"+m[1]:
				drop[i] = true
			}
		}
	}
	if m := unrecognizedArg.FindStringSubmatch(output); m != nil {
		for _, u := range strings.Fields(m[1]) {
			for i, a := range addopts {
				if a != u || drop[i] {
					continue
				}
				drop[i] = true
				if strings.HasPrefix(a, "-") && !strings.Contains(a, "=") && i+1 < len(addopts) && !strings.HasPrefix(addopts[i+1], "-") {
					drop[i+1] = true // the option's value (--cov-report term)
				}
				break
			}
		}
	}
	for i, a := range addopts {
		if drop[i] {
			dropped = append(dropped, a)
		} else {
			kept = append(kept, a)
		}
	}
	return kept, dropped, missingRequired.MatchString(output)
}

// debianPackage is the Debian package that usually provides the Python
// module top: python3-<name>, lower case with '_' as '-', with the few
// well-known exceptions.
func debianPackage(top string) string {
	known := map[string]string{
		"yaml": "python3-yaml", "PIL": "python3-pil", "dateutil": "python3-dateutil", "attr": "python3-attr",
		"pytest_mock": "python3-pytest-mock", "xdist": "python3-pytest-xdist", "pytest_cov": "python3-pytest-cov",
		"hypothesis": "python3-hypothesis", "bs4": "python3-bs4", "sklearn": "python3-sklearn", "cv2": "python3-opencv",
		"Crypto": "python3-pycryptodome", "OpenSSL": "python3-openssl", "jwt": "python3-jwt", "magic": "python3-magic",
	}
	if p, ok := known[top]; ok {
		return p
	}
	return "python3-" + strings.ReplaceAll(strings.ToLower(top), "_", "-")
}
