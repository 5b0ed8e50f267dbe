package rego

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is one Rego test's outcome.
type TestResult struct {
	Package  string        `json:"package"`
	Name     string        `json:"name"`
	File     string        `json:"file"`
	Pass     bool          `json:"pass"`
	Skipped  bool          `json:"skipped,omitempty"`
	Error    string        `json:"error,omitempty"`
	Output   string        `json:"output,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// FileCoverage is the share of a policy file's lines the tests ran.
type FileCoverage struct {
	File       string  `json:"file"`
	Covered    int     `json:"covered_lines"`
	NotCovered int     `json:"not_covered_lines"`
	Coverage   float64 `json:"coverage"`
	// Missed are the line ranges no test ran, as "12-14".
	Missed []string `json:"not_covered,omitempty"`
}

// TestReport is what RunTests found.
type TestReport struct {
	Results  []TestResult   `json:"results"`
	Passed   int            `json:"passed"`
	Failed   int            `json:"failed"`
	Coverage float64        `json:"coverage"`
	Files    []FileCoverage `json:"files"`
}

// RunTests runs the test_ rules of ms (policies and their _test.rego
// files) as opa test does, with line coverage of the policy files.
func RunTests(ctx context.Context, ms []Module, timeout time.Duration) (*TestReport, error) {
	parsed, err := Parse(ms)
	if err != nil {
		return nil, fmt.Errorf("parsing policies: %w", err)
	}
	cov := cover.New()
	store := inmem.New()
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	compiler := ast.NewCompiler().WithEnablePrintStatements(true).WithCapabilities(capabilities())
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	r := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(parsed).
		SetCoverageQueryTracer(cov).
		CapturePrintOutput(true).
		SetTimeout(timeout).
		SetDefaultRegoVersion(ast.RegoV1)
	ch, err := r.RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("running policy tests: %w", err)
	}
	rep := &TestReport{Results: []TestResult{}, Files: []FileCoverage{}}
	for res := range ch {
		tr := TestResult{
			Package: strings.TrimPrefix(res.Package, "data."), Name: res.Name, File: res.Location.File,
			Pass: res.Pass(), Skipped: res.Skip, Output: string(res.Output), Duration: res.Duration,
		}
		if res.Error != nil {
			tr.Error = res.Error.Error()
		} else if res.Fail {
			tr.Error = "the test's body was false or undefined"
		}
		if tr.Pass {
			rep.Passed++
		} else if !tr.Skipped {
			rep.Failed++
		}
		rep.Results = append(rep.Results, tr)
	}
	if len(rep.Results) == 0 {
		return nil, fmt.Errorf("no test_ rule found in %d Rego files", len(ms))
	}
	// Coverage of the policies, not of the tests.
	policies := map[string]*ast.Module{}
	for p, m := range parsed {
		if !strings.HasSuffix(p, "_test.rego") {
			policies[p] = m
		}
	}
	cr := cov.Report(policies)
	covered, total := 0, 0
	for file, fr := range cr.Files {
		if strings.HasSuffix(file, "_test.rego") {
			continue
		}
		covered += fr.CoveredLines
		total += fr.CoveredLines + fr.NotCoveredLines
		fc := FileCoverage{File: file, Covered: fr.CoveredLines, NotCovered: fr.NotCoveredLines, Coverage: fr.Coverage}
		for _, rg := range fr.NotCovered {
			fc.Missed = append(fc.Missed, fmt.Sprintf("%d-%d", rg.Start.Row, rg.End.Row))
		}
		rep.Files = append(rep.Files, fc)
	}
	if total > 0 {
		rep.Coverage = 100 * float64(covered) / float64(total)
	}
	slices.SortFunc(rep.Files, func(a, b FileCoverage) int { return strings.Compare(a.File, b.File) })
	return rep, nil
}
