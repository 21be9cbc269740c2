"""The open-ended experiment: first-token refusal, capability cost and judged generations, swept over layers x multipliers and stored point by point.

Import names from the module that defines them; this package re-exports nothing."""
