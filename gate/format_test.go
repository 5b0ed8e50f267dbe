package gate_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/gate"
)

func sampleReport(outcome string) *gate.Report {
	d := &gate.Decision{
		ID: "d-1", Time: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), Environment: "prod", Digest: "sha256:1111",
		Revision: "sha256:9999", InputDigest: "sha256:aaaa", Outcome: outcome, Allow: outcome == gate.Pass,
		Policies: []string{"quality", "signature"}, Deny: []gate.Reason{}, Warn: []gate.Reason{},
	}
	if outcome != gate.Pass {
		d.Deny = []gate.Reason{{Policy: "quality", Rule: "deny", Msg: "suite \"demo\" passes 33%\nof | items: 50% <target>", Remediation: "fix it"}}
		d.Warn = []gate.Reason{{Policy: "signature", Rule: "deny", Msg: "demoted", Demoted: true}}
	}
	return &gate.Report{Decision: d, Release: gate.Subject{Ref: "r/x@sha256:1111", Digest: "sha256:1111"},
		Evidence: []gate.EvidenceRef{{Kind: "eval", Suite: "demo", Digest: "sha256:e1", Source: "run"}}}
}

// TestFormats checks each output format is well formed and carries the
// decision: what a CI system parses must parse.
func TestFormats(t *testing.T) {
	for _, outcome := range []string{gate.Pass, gate.Fail} {
		r := sampleReport(outcome)
		var b bytes.Buffer
		must := func(format string) string {
			b.Reset()
			if err := r.Write(&b, format); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			return b.String()
		}
		var back gate.Report
		if err := json.Unmarshal([]byte(must("json")), &back); err != nil || back.Decision.Outcome != outcome {
			t.Errorf("json: %v %+v", err, back.Decision)
		}
		var ju struct {
			Suites []struct {
				Failures int `xml:"failures,attr"`
				Cases    []struct {
					Name    string `xml:"name,attr"`
					Failure *struct {
						Message string `xml:"message,attr"`
					} `xml:"failure"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal([]byte(must("junit")), &ju); err != nil || len(ju.Suites) != 1 || len(ju.Suites[0].Cases) != 2 {
			t.Fatalf("junit: %v %+v", err, ju)
		}
		if want := map[string]int{gate.Pass: 0, gate.Fail: 1}[outcome]; ju.Suites[0].Failures != want {
			t.Errorf("junit failures %d, want %d", ju.Suites[0].Failures, want)
		}
		var sarif struct {
			Version string `json:"version"`
			Runs    []struct {
				Results []struct {
					RuleID string `json:"ruleId"`
					Level  string `json:"level"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(must("sarif")), &sarif); err != nil || sarif.Version != "2.1.0" || len(sarif.Runs) != 1 {
			t.Fatalf("sarif: %v", err)
		}
		gh := must("github")
		md := must("markdown")
		if outcome == gate.Fail {
			if res := sarif.Runs[0].Results; len(res) != 2 || res[0].RuleID != "airlock.gate/quality" || res[0].Level != "error" || res[1].Level != "warning" {
				t.Errorf("sarif results: %+v", res)
			}
			// One annotation per line: the newline in the message is encoded.
			if !strings.Contains(gh, "::error title=airlock.gate/quality::suite \"demo\" passes 33%25%0Aof") {
				t.Errorf("github annotations:\n%s", gh)
			}
			if !strings.Contains(md, `of \| items: 50% &lt;target&gt;`) || !strings.Contains(md, "DENIED for prod") {
				t.Errorf("markdown does not escape the table cell or misses the outcome:\n%s", md)
			}
		} else if !strings.Contains(gh, "::notice title=airlock gate::") || !strings.Contains(md, "PASSED for prod") {
			t.Errorf("pass not reported:\n%s\n%s", gh, md)
		}
	}
	if err := sampleReport(gate.Pass).Write(&bytes.Buffer{}, "yaml"); err == nil {
		t.Error("an unknown format must be an error")
	}
}
