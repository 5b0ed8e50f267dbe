#!/usr/bin/env bash
# Installs the external programs that Airlock's interop tests and benchmarks
# use, on a fresh Debian 12 machine that already has Go:
#
#   Debian packages  docker-registry (distribution v2.8.2), skopeo, prometheus
#                    (2.42, with promtool: gate/canary's Prometheus provider
#                    is tested against a real one, fed by promtool's backfill)
#   Go tools         crane, regctl, cosign (v2) and cosign3 (v3), pinned,
#                    into $REPO/.tools/bin
#   npm packages     node-llama-cpp (llama.cpp's prebuilt CPU binaries for
#                    Linux x86-64), pinned by runner/process/testdata/llama,
#                    into $REPO/.tools/llama (runner/process's real-engine test);
#                    promptfoo, pinned by evals/testdata/promptfoo, into
#                    $REPO/.tools/promptfoo (the eval import's interop test)
#   with "bench"     also distribution v3's registry as .tools/bin/distribution-v3
#                    (make bench compares the embedded registry with it; the
#                    build takes about three minutes on two cores)
#
# It is idempotent and quiet: it prints one line per thing it installs and
# nothing when everything is already there. Tests find the Go tools through
# registry/regtest, which looks in .tools/bin before PATH.
set -euo pipefail

CRANE_MODULE=github.com/google/go-containerregistry/cmd/crane
CRANE_VERSION=v0.20.6
REGCTL_MODULE=github.com/regclient/regclient/cmd/regctl
REGCTL_VERSION=v0.9.2
COSIGN_MODULE=github.com/sigstore/cosign/v2/cmd/cosign
COSIGN_VERSION=v2.6.5
COSIGN3_MODULE=github.com/sigstore/cosign/v3/cmd/cosign
COSIGN3_VERSION=v3.1.3
GOLANGCI_MODULE=github.com/golangci/golangci-lint/v2/cmd/golangci-lint
GOLANGCI_VERSION=v2.5.0
ACTIONLINT_MODULE=github.com/rhysd/actionlint/cmd/actionlint
ACTIONLINT_VERSION=v1.7.12
DISTRIBUTION_MODULE=github.com/distribution/distribution/v3/cmd/registry
DISTRIBUTION_VERSION=v3.1.2

# "install-tools.sh lint" installs only the linter (make lint); "demo" only
# what make demo starts (prometheus); with no argument, everything the tests
# and demo use; "bench" adds what make bench compares against.
what=${1:-all}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_bin="$repo/.tools/bin"

# Output of apt-get and go install goes here and is shown only on failure.
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# --- Debian packages -------------------------------------------------------
if [[ $what == all || $what == bench || $what == demo ]]; then

# Each entry is "binary:package"; a package is installed only when its binary
# is missing, so a machine that has them never touches apt.
pkgs=(/usr/bin/docker-registry:docker-registry /usr/bin/skopeo:skopeo /usr/bin/prometheus:prometheus)
if [[ $what == demo ]]; then
	pkgs=(/usr/bin/prometheus:prometheus)
fi
missing_pkgs=()
for pair in "${pkgs[@]}"; do
	bin=${pair%%:*}
	pkg=${pair#*:}
	if [[ ! -x $bin ]]; then
		missing_pkgs+=("$pkg")
	fi
done

if ((${#missing_pkgs[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-tools: need root to install Debian packages: ${missing_pkgs[*]}" >&2
		echo "install-tools: run: sudo apt-get update && sudo apt-get install -y ${missing_pkgs[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! { apt-get update && apt-get install -y --no-install-recommends "${missing_pkgs[@]}"; } >"$log" 2>&1; then
		cat "$log" >&2
		echo "install-tools: apt-get install ${missing_pkgs[*]} failed" >&2
		exit 1
	fi
	# The docker-registry package enables a systemd service listening on
	# :5000 with htpasswd auth; tests start their own instances, so stop it
	# where systemd runs (containers usually have no systemd: ignore errors).
	if [[ " ${missing_pkgs[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now docker-registry >/dev/null 2>&1 || true
	fi
	# The prometheus package likewise enables a service scraping :9090 into
	# /var/lib/prometheus; tests start their own on free ports.
	if [[ " ${missing_pkgs[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now prometheus >/dev/null 2>&1 || true
	fi
	for pkg in "${missing_pkgs[@]}"; do
		echo "install-tools: installed $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
	done
fi

fi

if [[ $what == demo ]]; then
	exit 0
fi

# --- Go tools ---------------------------------------------------------------

if ! command -v go >/dev/null 2>&1; then
	echo "install-tools: go is not on PATH" >&2
	exit 1
fi

# installed_as prints "PACKAGE@VERSION" from the build info of a Go binary,
# or nothing if the file is missing or not a Go binary.
installed_as() {
	[[ -x $1 ]] || return 0
	go version -m "$1" 2>/dev/null | awk '
		$1 == "path" { path = $2 }
		$1 == "mod" { print path "@" $3; exit }'
}

go_tool() {
	local name=$1 module=$2 version=$3
	if [[ $(installed_as "$tools_bin/$name") == "$module@$version" ]]; then
		return 0
	fi
	mkdir -p "$tools_bin"
	# go install MODULE@VERSION builds with the tool's own go.mod, so it
	# never touches Airlock's go.mod or go.sum; cd / keeps that obvious. It
	# names the binary after the package (distribution's is "registry"), so
	# it goes to a scratch GOBIN first and is renamed into place.
	local gobin
	gobin=$(mktemp -d)
	if ! (cd / && GOBIN="$gobin" go install "$module@$version") >"$log" 2>&1; then
		cat "$log" >&2
		rm -rf "$gobin"
		echo "install-tools: go install $module@$version failed" >&2
		exit 1
	fi
	mv "$gobin/${module##*/}" "$tools_bin/$name"
	rm -rf "$gobin"
	echo "install-tools: installed $name $version in $tools_bin"
}

# llama_tool installs the npm packages pinned by runner/process/testdata/llama
# (package.json and its lock) into .tools/llama, once per version of the lock.
# --ignore-scripts: node-llama-cpp's postinstall would try to download or
# build llama.cpp; the prebuilt binaries come in @node-llama-cpp/linux-x64.
# npm install, not npm ci: the lock lacks the macOS and Windows binary
# packages, which the npm registry this project's builds reach does not have.
llama_tool() {
	local src="$repo/runner/process/testdata/llama" dest="$repo/.tools/llama"
	[[ $(uname -sm) == "Linux x86_64" ]] || return 0
	if cmp -s "$src/package-lock.json" "$dest/installed-lock.json" && [[ -d $dest/node_modules/node-llama-cpp ]]; then
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1; then
		echo "install-tools: npm is not on PATH (runner/process's llama test needs Node.js 20 or later and npm)" >&2
		exit 1
	fi
	mkdir -p "$dest"
	cp "$src/package.json" "$src/package-lock.json" "$dest/"
	if ! (cd "$dest" && npm install --omit=optional --ignore-scripts --no-audit --no-fund) >"$log" 2>&1; then
		cat "$log" >&2
		echo "install-tools: npm install in $dest failed" >&2
		exit 1
	fi
	cp "$src/package-lock.json" "$dest/installed-lock.json"
	echo "install-tools: installed node-llama-cpp $(cd "$dest" && node -p 'require("./node_modules/node-llama-cpp/package.json").version' 2>/dev/null) in $dest"
}

# promptfoo_tool installs promptfoo, pinned by evals/testdata/promptfoo
# (package.json and its lock), into .tools/promptfoo, once per version of the
# lock, for the test that imports its real results into airlock eval.
# Playwright's and Puppeteer's browser downloads are skipped (promptfoo's eval
# does not need a browser, and this machine reaches only the npm registry);
# better-sqlite3 is built by its install script.
promptfoo_tool() {
	local src="$repo/evals/testdata/promptfoo" dest="$repo/.tools/promptfoo"
	if cmp -s "$src/package-lock.json" "$dest/installed-lock.json" && [[ -x $dest/node_modules/.bin/promptfoo ]]; then
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1; then
		echo "install-tools: npm is not on PATH (the promptfoo interop test needs Node.js 20 or later and npm)" >&2
		exit 1
	fi
	mkdir -p "$dest"
	cp "$src/package.json" "$src/package-lock.json" "$dest/"
	if ! (cd "$dest" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund) >"$log" 2>&1; then
		cat "$log" >&2
		echo "install-tools: npm install in $dest failed" >&2
		exit 1
	fi
	cp "$src/package-lock.json" "$dest/installed-lock.json"
	echo "install-tools: installed promptfoo $(cd "$dest" && node -p 'require("./node_modules/promptfoo/package.json").version' 2>/dev/null) in $dest"
}

case $what in
lint)
	go_tool golangci-lint "$GOLANGCI_MODULE" "$GOLANGCI_VERSION"
	go_tool actionlint "$ACTIONLINT_MODULE" "$ACTIONLINT_VERSION"
	;;
all | bench)
	go_tool crane "$CRANE_MODULE" "$CRANE_VERSION"
	go_tool regctl "$REGCTL_MODULE" "$REGCTL_VERSION"
	go_tool cosign "$COSIGN_MODULE" "$COSIGN_VERSION"
	go_tool cosign3 "$COSIGN3_MODULE" "$COSIGN3_VERSION"
	llama_tool
	promptfoo_tool
	if [[ $what == bench ]]; then
		go_tool distribution-v3 "$DISTRIBUTION_MODULE" "$DISTRIBUTION_VERSION"
	fi
	;;
*)
	echo "install-tools: unknown argument $what (want: lint, bench, or nothing)" >&2
	exit 64
	;;
esac
