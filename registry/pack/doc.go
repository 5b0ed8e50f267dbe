// Package pack turns a release directory described by airlock.yaml into a
// CNCF ModelPack OCI artifact (DESIGN.md §3): one raw layer per file, the
// ModelPack config, Airlock's role annotations and the release file as a
// manifest annotation.
//
// Packing is reproducible: the manifest digest depends only on file
// contents, relative paths, the executable bit and the release file, never
// on the machine, the walk order or file times. A creation time is written
// only when the caller passes one (the CLI takes it from SOURCE_DATE_EPOCH).
//
// Parse is pure and safe on untrusted input; Load adds the filesystem
// checks (paths exist, stay inside the release directory, no symlinks out).
package pack
