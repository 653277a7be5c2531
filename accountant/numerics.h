#ifndef DPFLEET_ACCOUNTANT_NUMERICS_H_
#define DPFLEET_ACCOUNTANT_NUMERICS_H_

// Log-space arithmetic and Gaussian tails that stay accurate where the plain formulas underflow.

namespace dpfleet::accountant {

// Returns log(exp(a) + exp(b)); either may be -infinity.
double LogAdd(double a, double b);

// Returns log(erfc(x)), accurate for every finite x: for x >= 20 it uses the asymptotic expansion
// erfc(x) = exp(-x^2) / (x sqrt(pi)) (1 - 1/(2x^2) + 3/(2x^2)^2 - 15/(2x^2)^3 + 105/(2x^2)^4 ...)
// (Abramowitz and Stegun 7.1.23), whose truncation error there is below 1e-12 relative.
double LogErfc(double x);

// Returns log(Phi(x)), Phi the standard normal CDF.
double LogNormalCdf(double x);

// Returns Phi(x).
double NormalCdf(double x);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_NUMERICS_H_
