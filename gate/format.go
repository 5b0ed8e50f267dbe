package gate

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Formats the gate writes a decision in.
var Formats = []string{"json", "markdown", "junit", "sarif", "github"}

// Report is what airlock gate prints: the decision with the evidence and
// the verdict it attached.
type Report struct {
	Decision *Decision `json:"decision"`
	Release  Subject   `json:"release"`
	Baseline *Subject  `json:"baseline,omitempty"`
	// Evidence is what the decision was taken on.
	Evidence []EvidenceRef `json:"evidence"`
	Changes  Changes       `json:"changes"`
	// VerdictRef is the verdict attestation's referrer, when one was
	// attached.
	VerdictRef string `json:"verdict_ref,omitempty"`
	// Ran lists the jobs the gate ran for missing evidence.
	Ran []string `json:"ran,omitempty"`
	// Notes say what the gate did that a reader should know.
	Notes []string `json:"notes,omitempty"`
}

// Write writes r in format (one of Formats).
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "json", "":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "markdown":
		return r.writeMarkdown(w)
	case "junit":
		return r.writeJUnit(w)
	case "sarif":
		return r.writeSARIF(w)
	case "github":
		return r.writeGitHub(w)
	}
	return fmt.Errorf("format %q: want one of %s", format, strings.Join(Formats, ", "))
}

func (r *Report) headline() string {
	d := r.Decision
	switch {
	case d.DryRun && d.Outcome != Pass:
		return fmt.Sprintf("would be DENIED for %s (dry run: not enforced)", d.Environment)
	case d.Outcome == Pass:
		return fmt.Sprintf("PASSED for %s", d.Environment)
	case d.Outcome == Error:
		return fmt.Sprintf("DENIED for %s: the policies could not decide (fail closed)", d.Environment)
	}
	return fmt.Sprintf("DENIED for %s", d.Environment)
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

func (r *Report) writeMarkdown(w io.Writer) error {
	d := r.Decision
	icon := "✅"
	if d.Outcome != Pass {
		icon = "❌"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### %s Airlock gate: %s\n\n", icon, r.headline())
	fmt.Fprintf(&b, "Release `%s`", r.Release.Digest)
	if r.Release.Ref != "" {
		fmt.Fprintf(&b, " (%s)", mdEscape(r.Release.Ref))
	}
	b.WriteString("\n")
	if r.Baseline != nil {
		fmt.Fprintf(&b, "against baseline `%s`", r.Baseline.Digest)
		if r.Baseline.Ref != "" {
			fmt.Fprintf(&b, " (%s)", mdEscape(r.Baseline.Ref))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	if len(d.Deny) > 0 {
		b.WriteString("| Policy | Denied because | What to do |\n|---|---|---|\n")
		for _, x := range d.Deny {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", x.Policy, mdEscape(x.Msg), mdEscape(x.Remediation))
		}
		b.WriteString("\n")
	}
	if len(d.Warn) > 0 {
		b.WriteString("| Policy | Warning |\n|---|---|\n")
		for _, x := range d.Warn {
			msg := x.Msg
			if x.Demoted {
				msg += " (a deny, in warn mode)"
			}
			fmt.Fprintf(&b, "| %s | %s |\n", x.Policy, mdEscape(msg))
		}
		b.WriteString("\n")
	}
	if len(r.Evidence) > 0 {
		b.WriteString("| Evidence | Suite | Digest | Source |\n|---|---|---|---|\n")
		for _, e := range r.Evidence {
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s |\n", e.Kind, e.Suite, short(e.Digest), e.Source)
		}
		b.WriteString("\n")
	}
	if r.Changes.FirstRelease {
		fmt.Fprintf(&b, "No baseline: a first release, its %d parts all new.\n\n", len(r.Changes.Parts))
	} else if len(r.Changes.Parts) > 0 {
		b.WriteString("Changed against the baseline: ")
		var cs []string
		for _, p := range r.Changes.Parts {
			cs = append(cs, fmt.Sprintf("%s `%s` (%s)", p.Change, mdEscape(p.Path), p.Role))
		}
		b.WriteString(strings.Join(cs, ", ") + "\n\n")
	}
	fmt.Fprintf(&b, "Policies: %s. Policy revision `%s`, decision `%s`, input `%s`, %s.\n",
		strings.Join(d.Policies, ", "), short(d.Revision), d.ID, short(d.InputDigest), d.Time.Format("2006-01-02 15:04:05Z07:00"))
	if r.VerdictRef != "" {
		fmt.Fprintf(&b, "Signed verdict: `%s`.\n", r.VerdictRef)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n> %s\n", mdEscape(n))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// JUnit: one test suite, one test case per policy evaluated; a deny is a
// failure, an engine error an error (as conftest does).
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

func (r *Report) writeJUnit(w io.Writer) error {
	d := r.Decision
	s := junitSuite{Name: "airlock gate " + d.Environment + " " + r.Release.Digest}
	byPolicy := map[string][]Reason{}
	for _, x := range d.Deny {
		byPolicy[x.Policy] = append(byPolicy[x.Policy], x)
	}
	warns := map[string][]string{}
	for _, x := range d.Warn {
		warns[x.Policy] = append(warns[x.Policy], "warning: "+x.Msg)
	}
	names := append([]string{}, d.Policies...)
	if _, ok := byPolicy["engine"]; ok {
		names = append([]string{"engine"}, names...)
	}
	for _, p := range names {
		c := junitCase{Name: p, Classname: "airlock.gate." + p, SystemOut: strings.Join(warns[p], "\n")}
		if rs := byPolicy[p]; len(rs) > 0 {
			var msgs, body []string
			for _, x := range rs {
				msgs = append(msgs, x.Msg)
				body = append(body, x.Msg+"\n  remediation: "+x.Remediation)
			}
			pr := &junitProblem{Message: strings.Join(msgs, "; "), Body: strings.Join(body, "\n")}
			if p == "engine" {
				c.Error = pr
				s.Errors++
			} else {
				c.Failure = pr
				s.Failures++
			}
		}
		s.Cases = append(s.Cases, c)
	}
	s.Tests = len(s.Cases)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// SARIF 2.1.0: one rule per policy (ruleId airlock.gate/NAME, as conftest
// names them), one result per deny (error) or warn (warning), located at
// the gate config or the release file.
func (r *Report) writeSARIF(w io.Writer) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string `json:"id"`
		Name             string `json:"name"`
		ShortDescription msg    `json:"shortDescription"`
	}
	type location struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	}
	type result struct {
		RuleID     string         `json:"ruleId"`
		Level      string         `json:"level"`
		Message    msg            `json:"message"`
		Locations  []location     `json:"locations"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	var loc location
	loc.PhysicalLocation.ArtifactLocation.URI = "airlock.yaml"
	d := r.Decision
	var rules []rule
	seen := map[string]bool{}
	addRule := func(p string) {
		if !seen[p] {
			seen[p] = true
			rules = append(rules, rule{ID: "airlock.gate/" + p, Name: p, ShortDescription: msg{Text: "Airlock policy " + p}})
		}
	}
	for _, p := range d.Policies {
		addRule(p)
	}
	results := []result{}
	add := func(x Reason, level string) {
		addRule(x.Policy)
		text := x.Msg
		if x.Remediation != "" {
			text += " — " + x.Remediation
		}
		results = append(results, result{RuleID: "airlock.gate/" + x.Policy, Level: level, Message: msg{Text: text},
			Locations: []location{loc}, Properties: map[string]any{"digest": d.Digest, "environment": d.Environment, "decision": d.ID}})
	}
	for _, x := range d.Deny {
		add(x, "error")
	}
	for _, x := range d.Warn {
		add(x, "warning")
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "airlock gate", "informationUri": "https://airlock.dev", "rules": rules,
			}},
			"results": results,
			"properties": map[string]any{
				"outcome": d.Outcome, "policy_revision": d.Revision, "input_digest": d.InputDigest,
			},
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// GitHub workflow commands: ::error:: per deny, ::warning:: per warn,
// ::notice:: for a pass, grouped.
func (r *Report) writeGitHub(w io.Writer) error {
	d := r.Decision
	var b strings.Builder
	fmt.Fprintf(&b, "::group::Airlock gate %s\n", ghEscape(r.headline()))
	for _, x := range d.Deny {
		fmt.Fprintf(&b, "::error title=airlock.gate/%s::%s\n", ghProp(x.Policy), ghEscape(x.Msg+" — "+x.Remediation))
	}
	for _, x := range d.Warn {
		fmt.Fprintf(&b, "::warning title=airlock.gate/%s::%s\n", ghProp(x.Policy), ghEscape(x.Msg))
	}
	if d.Outcome == Pass {
		fmt.Fprintf(&b, "::notice title=airlock gate::%s passed for %s (decision %s)\n", ghEscape(r.Release.Digest), ghEscape(d.Environment), d.ID)
	}
	b.WriteString("::endgroup::\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ghEscape escapes a workflow command's message (the runner's rules:
// %, CR and LF are percent-encoded).
func ghEscape(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProp escapes a workflow command's property value.
func ghProp(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
