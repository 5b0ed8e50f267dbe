package pack

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidRelease marks a release file or directory that cannot be
// packed. Every error Parse and Load return for bad input wraps it.
var ErrInvalidRelease = errors.New("invalid release")

// FieldError is one problem in a release file, located as precisely as the
// YAML parser allows.
type FieldError struct {
	File   string // release file as the user named it
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Field  string // dotted path such as prompts[1].path; empty for the whole file
	Msg    string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap lets callers match any FieldError with errors.Is(err, ErrInvalidRelease).
func (e *FieldError) Unwrap() error { return ErrInvalidRelease }

// ValidationError is every problem found in one release file, one per
// line, in file order.
type ValidationError struct {
	Problems []*FieldError
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
