package canary

import (
	"math"
	"testing"
)

func TestRegIncBeta(t *testing.T) {
	for _, c := range []struct{ a, b, x, want float64 }{
		{1, 1, 0.3, 0.3},
		{2, 3, 0.5, 0.6875}, // 11/16
		{0.5, 0.5, 0.5, 0.5},
		{5, 1, 0.9, math.Pow(0.9, 5)},
		{1, 5, 0.1, 1 - math.Pow(0.9, 5)},
		{30, 40, 0.45, 0.6537}, // against a 200,000-step midpoint integral below
	} {
		got := regIncBeta(c.a, c.b, c.x)
		want := c.want
		if c.a == 30 {
			want = integrate(func(u float64) float64 {
				return math.Exp((c.a-1)*math.Log(u) + (c.b-1)*math.Log1p(-u) - lbeta(c.a, c.b))
			}, 0, c.x)
		}
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("I_%g(%g, %g) = %.12g, want %.12g", c.x, c.a, c.b, got, want)
		}
	}
}

func integrate(f func(float64) float64, lo, hi float64) float64 {
	const n = 200000
	h := (hi - lo) / n
	s := 0.0
	for i := 0; i < n; i++ {
		s += f(lo + (float64(i)+0.5)*h)
	}
	return s * h
}

// The closed forms equal the mixtures they stand for, integrated
// numerically.
func TestMixturesMatchIntegrals(t *testing.T) {
	est, theta0, v, tau := 0.3, 0.1, 0.02, 0.15
	for _, upper := range []bool{true, false} {
		lo, hi := theta0, theta0+20*tau
		if !upper {
			lo, hi = theta0-20*tau, theta0
		}
		want := integrate(func(th float64) float64 {
			lr := math.Exp(((th-theta0)*(est-theta0) - (th-theta0)*(th-theta0)/2) / v)
			return lr * 2 * math.Exp(-(th-theta0)*(th-theta0)/(2*tau*tau)) / (math.Sqrt(2*math.Pi) * tau)
		}, lo, hi)
		if got := msprtOneSided(est, theta0, v, tau, upper); math.Abs(got-want)/want > 1e-6 {
			t.Errorf("mSPRT upper=%v: %g, integral %g", upper, got, want)
		}
	}
	x, y, th0, a, b := 9.0, 30.0, 0.1, 1.4, 1.6
	for _, upper := range []bool{true, false} {
		lo, hi := th0, 1.0
		if !upper {
			lo, hi = 0, th0
		}
		prior := func(u float64) float64 { return math.Exp((a-1)*math.Log(u) + (b-1)*math.Log1p(-u) - lbeta(a, b)) }
		num := integrate(func(u float64) float64 {
			return prior(u) * math.Exp(x*math.Log(u/th0)+y*math.Log((1-u)/(1-th0)))
		}, lo, hi)
		mass := integrate(prior, lo, hi)
		want := num / mass
		if got := betaBinomialBF(x, y, th0, a, b, upper); math.Abs(got-want)/want > 1e-3 {
			t.Errorf("Beta-binomial upper=%v: %g, integral %g", upper, got, want)
		}
	}
}
