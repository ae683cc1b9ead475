// Package oci owns dsbuild's environment images: it builds them (a base from
// mmdebstrap, a registry, an OCI layout or a docker-archive, plus one small
// layer per task holding a repository tree), keeps them in the
// content-addressed store, and exports them (an OCI image layout, a push to a
// registry, a docker-archive tarball). It uses go-containerregistry and never
// a Docker daemon.
//
// Task images follow the conventions of agents and graders (SWE-agent,
// OpenHands, the SWE-bench harness): a Debian base always has git and patch
// (bases from a registry, a layout or an archive must bring their own), and
// WithTree with ConfigOptions.GitRepository makes the placed tree a git
// repository whose single commit, made deterministically by
// internal/gitrepo, is the tree, with a clean `git status`.
//
// Every image is reproducible: OCI media types are set explicitly, layer tar
// entries are sorted with zero mtimes, layers are gzip-compressed with fixed
// settings and configs carry a fixed timestamp, so the same inputs give the
// same manifest digest in every process and on every machine of one
// architecture.
//
// In the store an image is its manifest blob (whose store digest is the OCI
// manifest digest), its config blob, its gzip-compressed layer blobs (store
// digest = OCI layer digest) and its uncompressed layer blobs (store digest =
// OCI diff ID, which is what schema.Image.Layers lists). Nothing else is
// needed to run or export an image.
//
// The package imports only cache, schema, internal/gitrepo and
// internal/reap of the project. It does not run anything inside images
// (that is the sandbox package) and knows nothing of recipes or stages.
package oci
