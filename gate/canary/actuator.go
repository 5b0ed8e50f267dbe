package canary

import (
	"context"
	"errors"
)

// ErrUnsupported says an actuator cannot do what was asked (a kill-switch
// on a traffic layer that has none). The promoter records it and goes on.
var ErrUnsupported = errors.New("not supported by this actuator")

// Actuator moves traffic between the baseline and the canary.
// Implementations: the built-in router (router.Client in
// gate/canary/router), Gateway API HTTPRoute weights (gate/canary/gatewayapi),
// and None for when something else (Argo Rollouts calling the judge
// endpoint) moves traffic.
type Actuator interface {
	// SetWeight sends percent (0–100) of the traffic to the canary and
	// the rest to the baseline. 0 is a rollback; 100 a promotion.
	SetWeight(ctx context.Context, percent int) error
	// KillSwitch sends all traffic to the last known good release (or a
	// configured fallback) when on, whatever the weights say, and
	// returns to the weights when off. reason is recorded where the
	// traffic layer can keep it.
	KillSwitch(ctx context.Context, on bool, reason string) error
}

// None is the actuator for plans whose traffic is moved by something else:
// it does nothing and has no kill-switch.
type None struct{}

var _ Actuator = None{}

// SetWeight does nothing.
func (None) SetWeight(context.Context, int) error { return nil }

// KillSwitch reports ErrUnsupported.
func (None) KillSwitch(context.Context, bool, string) error { return ErrUnsupported }
