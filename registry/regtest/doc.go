// Package regtest starts OCI registries for Airlock's tests, benchmarks and
// demos, so that code under test talks to a real registry over HTTP instead
// of a mock that agrees with whatever the code assumes.
//
// It owns three things:
//
//   - Distribution and RunDistribution: Debian's docker-registry
//     (distribution v2.8.2) as a child process on a free loopback port, with
//     its own config, filesystem storage and log file. It is the reference
//     implementation most registries descend from, and it has no referrers
//     API, so it exercises Airlock's fallback paths.
//   - InProcess: go-containerregistry's in-memory registry under
//     net/http/httptest, with the OCI 1.1 referrers API enabled. It needs no
//     external binary, so tests that use it always run; it keeps every blob
//     and upload in memory, so it is for small artifacts only.
//   - Tool and FindTool: the external clients used for interop checks
//     (crane, regctl, skopeo, docker-registry), looked up in the repository's
//     .tools/bin (filled by .ci/install-tools.sh) and then in PATH.
//
// Tests skip when an external program is missing, naming
// .ci/install-tools.sh; with AIRLOCK_REQUIRE_INTEROP=1 in the environment
// they fail instead, so CI cannot pass by silently skipping interop.
//
// The package imports nothing from the rest of Airlock, so every package
// may use it in tests without import cycles.
package regtest
