// Package gate will own the policy input document, decisions and signed
// verdicts, and the orchestration verify → run → decide → attest
// (DESIGN.md §1, §6). Nothing is implemented yet; see the open gate issue.
package gate
