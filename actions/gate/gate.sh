#!/usr/bin/env bash
# The Airlock gate action's step: runs airlock gate with the action's
# inputs (INPUT_* variables), appends its outputs (decision, digest,
# verdict-ref) to $GITHUB_OUTPUT and its Markdown summary to
# $GITHUB_STEP_SUMMARY, prints workflow annotations, and exits with
# airlock's code, so a deny (1) or an error (2) fails the step.
set -uo pipefail

airlock="${AIRLOCK_BIN:-airlock}"
: "${INPUT_REF:?the ref input is required}"
: "${INPUT_CONFIG:?the config input is required}"

args=(gate "$INPUT_REF" --config "$INPUT_CONFIG" --format github --no-progress)
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
	args+=(--github-output "$GITHUB_OUTPUT")
fi
if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
	args+=(--markdown "$GITHUB_STEP_SUMMARY")
fi
if [[ -n "${INPUT_KEY:-}" ]]; then
	args+=(--key "$INPUT_KEY")
fi
if [[ "${INPUT_PROMOTE:-false}" == true ]]; then
	args+=(--promote)
fi
if [[ "${INPUT_DRY_RUN:-false}" == true ]]; then
	args+=(--dry-run)
fi
if [[ -n "${INPUT_ARGS:-}" ]]; then
	# Split into words with quotes honoured (xargs does it and runs
	# nothing: no expansion, no command substitution); the value arrives
	# through the environment, never through the script's text.
	mapfile -t extra < <(printf '%s' "$INPUT_ARGS" | xargs -n 1 printf '%s\n') || exit 64
	args+=("${extra[@]}")
fi

"$airlock" "${args[@]}"
code=$?
case $code in
0) ;;
1) echo "::error title=airlock gate::the release was denied by policy; the step summary has the reasons" ;;
64) echo "::error title=airlock gate::wrong command line (exit 64): check the action's inputs" ;;
*) echo "::error title=airlock gate::the gate could not decide (exit $code); a release that cannot be decided is denied" ;;
esac
exit "$code"
