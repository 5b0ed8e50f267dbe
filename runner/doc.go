// Package runner will own the job queue, batching and engines that run
// eval and benchmark jobs against an exact release digest (DESIGN.md §4).
// Nothing is implemented yet; see the open runner issue.
package runner
