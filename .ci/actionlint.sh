#!/usr/bin/env bash
# Lints the GitHub Actions metadata (actions/*/action.yml) and the example
# workflows in docs/examples with actionlint. actionlint checks a local
# action (uses: ./actions/gate) only inside a repository layout, so the
# files are copied into a scratch one. Also syntax-checks the action's
# scripts with bash -n.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/.github/workflows"
cp -r "$repo/actions" "$scratch/"
cp "$repo"/docs/examples/*.yml "$scratch/.github/workflows/"
git -C "$scratch" init -q
for s in "$repo"/actions/*/*.sh; do
	bash -n "$s"
done
cd "$scratch"
"$repo/.tools/bin/actionlint" -shellcheck= -no-color
echo "actionlint: $(ls .github/workflows | wc -l) workflow(s) and $(ls -d actions/*/ actions/action.yml 2>/dev/null | wc -l) action(s) are clean"
