// Package registry holds the types every part of Airlock shares about OCI
// artifacts: the media types and annotations of the release format
// (DESIGN.md §3), references to releases in a registry, and the small
// interfaces through which the rest of Airlock reads and writes registries.
//
// It imports only the standard library, the OCI image-spec types and
// go-digest, so that any package may depend on it. The code that talks to a
// registry lives in registry/client; the code that builds a release lives in
// registry/pack.
package registry
