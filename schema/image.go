package schema

// Image describes an environment image held in the content-addressed store:
// enough to run it (the sandbox unpacks Layers in order) and to publish it
// (the oci package writes manifest and config). Digests are in
// "sha256:<hex>" form.
type Image struct {
	// Digest is the OCI manifest digest; it identifies the image.
	Digest string `json:"digest"`
	// Layers are store digests of the uncompressed layer tarballs, base first.
	Layers []string `json:"layers"`
	// Env is the image's environment, KEY=VALUE.
	Env []string `json:"env,omitempty"`
	// WorkingDir is the image's working directory (usually /testbed).
	WorkingDir string `json:"working_dir,omitempty"`
	// Ref is a human-readable name, e.g. "dsbuild/quickstart:mathx-bug-3".
	Ref string `json:"ref,omitempty"`
}
