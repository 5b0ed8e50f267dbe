package canary

import (
	"math"
)

// The anytime-valid tests behind the judge. Each returns a mixture
// likelihood ratio Λ against its null; under the null Λ is a nonnegative
// supermartingale, so by Ville's inequality P(Λ ever ≥ 1/α) ≤ α however
// often it is looked at (canary-evals reference §3.6).

// msprtOneSided is the mSPRT statistic for H0: θ ≤ θ0 against θ > θ0, for an
// estimate est of θ with variance v, mixing over a half-normal of scale tau
// above θ0 (Johari, Pekelis, Walsh). Mixing over θ < θ0 instead (upper=false)
// tests H0: θ ≥ θ0. It is the two-sided statistic
//
//	sqrt(v/(v+τ²)) · exp(τ²(est−θ0)² / (2v(v+τ²)))
//
// times 2Φ(±(est−θ0)τ/√(v(v+τ²))): the half-normal mixture's closed form.
func msprtOneSided(est, theta0, v, tau float64, upper bool) float64 {
	if !(v > 0) || !(tau > 0) {
		return 0
	}
	s := est - theta0
	t2 := tau * tau
	logTwo := 0.5*math.Log(v/(v+t2)) + t2*s*s/(2*v*(v+t2))
	z := s * tau / math.Sqrt(v*(v+t2))
	if !upper {
		z = -z
	}
	return math.Exp(logTwo + math.Log(2*normalCDF(z)))
}

// confidenceSequence is the half-width of mSPRT's two-sided confidence
// sequence at level alpha: est ± w covers θ at every look with probability
// at least 1−α.
func confidenceSequence(v, tau, alpha float64) float64 {
	if !(v > 0) || !(tau > 0) {
		return math.Inf(1)
	}
	t2 := tau * tau
	return math.Sqrt(v * (v + t2) / t2 * (2*math.Log(1/alpha) + math.Log((v+t2)/v)))
}

// betaBinomialBF is the Bayes factor of the one-sided Beta-binomial mixture
// test on two event counts (the two-arm case of Lindon & Malek's
// multinomial test). Under H0 each event is the canary's with probability at
// most theta0 (its share of requests, scaled by the tolerance); x of the
// events are the canary's and y the baseline's. The alternative mixes θ over
// a Beta(a, b) truncated to (theta0, 1). upper=false truncates to (0,
// theta0) instead and tests H0: θ ≥ theta0.
func betaBinomialBF(x, y, theta0, a, b float64, upper bool) float64 {
	if !(theta0 > 0 && theta0 < 1) {
		return 0
	}
	// log of ∫ θ^x (1−θ)^y Beta(θ; a, b) dθ over the truncated range,
	// normalised by the prior's mass there, over θ0^x (1−θ0)^y.
	// 1 − I_θ0(a, b) is computed as I_{1−θ0}(b, a), which keeps its
	// precision when it is small.
	postMass, priorMass := regIncBeta(a+x, b+y, theta0), regIncBeta(a, b, theta0)
	if upper {
		postMass, priorMass = regIncBeta(b+y, a+x, 1-theta0), regIncBeta(b, a, 1-theta0)
	}
	if priorMass <= 0 {
		return 0
	}
	if postMass <= 0 {
		// The posterior mass underflowed: the data put θ far on the
		// other side. Λ is 0 for practical purposes.
		return 0
	}
	l := lbeta(a+x, b+y) - lbeta(a, b) + math.Log(postMass) - math.Log(priorMass) -
		x*math.Log(theta0) - y*math.Log1p(-theta0)
	return math.Exp(l)
}

func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

func normalCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// regIncBeta is the regularized incomplete beta function I_x(a, b), by the
// continued fraction of Abramowitz & Stegun 26.5.8 evaluated with the
// modified Lentz method.
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	lfront := a*math.Log(x) + b*math.Log1p(-x) - lbeta(a, b)
	if x > (a+1)/(a+b+2) {
		return 1 - math.Exp(lfront-math.Log(b))*betaCF(b, a, 1-x)
	}
	return math.Exp(lfront-math.Log(a)) * betaCF(a, b, x)
}

func betaCF(a, b, x float64) float64 {
	const tiny = 1e-300
	const eps = 1e-15
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	f := d
	for m := 1; m <= 10000; m++ {
		fm := float64(m)
		num := fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		f *= d * c
		num = -(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		f *= delta
		if math.Abs(delta-1) < eps {
			break
		}
	}
	return f
}
