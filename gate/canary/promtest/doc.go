// Package promtest runs a real Prometheus for tests: the Debian package's
// prometheus 2.42 as a child process on a free loopback port, in the
// test's temporary directory, stopped when the test ends.
//
// Start runs it with a configuration that scrapes the given targets (or
// nothing). Backfill turns OpenMetrics text with timestamps into TSDB
// blocks with promtool, so that a test can give Prometheus a known history
// at times it chooses instead of scraping for real and waiting: the way
// gate/canary/prometheus feeds the providertest conformance suite.
//
// The binaries are found like every external program of Airlock's tests
// (registry/regtest.Tool: .tools/bin, PATH, /usr/bin). When they are
// missing the test is skipped, or fails under AIRLOCK_REQUIRE_INTEROP=1
// (make test); .ci/install-tools.sh installs them.
package promtest
