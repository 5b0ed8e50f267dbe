package evals

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseSafetyExample(t *testing.T) {
	b, err := os.ReadFile("../examples/support-bot/safety.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSafety(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Limits.MaxOutputTokens != 512 || *s.Limits.Temperature != 0.2 || len(s.PII.RedactOutput) != 3 || !strings.HasPrefix(s.Refusal.Message, "Sorry") {
		t.Errorf("%+v", s)
	}
	for in, want := range map[string]string{
		"limits: {max_ouput_tokens: 5}":    "max_ouput_tokens",
		"pii: {redact_output: [passport]}": `unknown kind "passport"`,
		"limits: {temperature: 3}":         "temperature 3",
		"limits: {top_p: 0}":               "top_p 0",
		"engine: {stream: false}":          "engine.stream",
		"limits: {max_output_tokens: -1}":  "negative",
		"refusal: [not, a, map]":           "cannot unmarshal",
	} {
		_, err := ParseSafety([]byte(in))
		if !errors.Is(err, ErrSafety) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	if _, err := ParseSafety([]byte("serving: {anything: [goes]}\n")); err != nil {
		t.Errorf("serving section: %v", err)
	}
}

func TestMessagesAsShipped(t *testing.T) {
	s := &Suite{Vars: map[string]string{"customer_name": "Alex", "order_id": "A-1"}}
	it := &Item{ID: "x", Vars: map[string]string{"order_id": "B-2"}, Messages: []Message{{Role: "user", Content: "Where is {{ order_id }}?"}}}
	sh := &Shipped{System: "Help {{customer_name}} with order {{order_id}}."}
	got, err := s.Messages(it, sh)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Message{Role: "system", Content: "Help Alex with order B-2."}) || got[1].Content != "Where is B-2?" {
		t.Errorf("%+v", got)
	}
	// A variable with no value names the item and the variable.
	_, err = (&Suite{}).Messages(it, sh)
	if err == nil || !strings.Contains(err.Error(), `item "x"`) || !strings.Contains(err.Error(), "customer_name") {
		t.Errorf("missing var: %v", err)
	}
	// Without a release, the item's messages as they are.
	got, _ = s.Messages(&Item{ID: "y", Messages: []Message{{Role: "user", Content: "hi"}}}, nil)
	if len(got) != 1 {
		t.Errorf("%+v", got)
	}
}

func TestRedact(t *testing.T) {
	var s Safety
	s.PII.RedactOutput = Redactors()
	in := "Card 4111 1111 1111 1111, not 1234 5678 9012 3456; mail a.b@example.com; call +1 555-010-1234; SSN 123-45-6789."
	got := s.Redact(in)
	for _, gone := range []string{"4111", "a.b@example.com", "555-010-1234", "123-45-6789"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q left in %q", gone, got)
		}
	}
	if !strings.Contains(got, "1234 5678 9012 3456") || !strings.Contains(got, "[REDACTED:card_number]") {
		t.Errorf("a number failing the Luhn check is not a card: %q", got)
	}
	var none Safety
	if none.Redact(in) != in {
		t.Error("redacted with nothing configured")
	}
	// The release's refusal message counts as a refusal.
	o := Output{Text: "Sorry, I can only help with orders.", RefusalMessage: "Sorry, I can only help with orders."}
	if !o.Refused() || (&Output{Text: "Sorry, I can only help with orders."}).Refused() {
		t.Error("refusal message")
	}
}
