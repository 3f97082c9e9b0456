"""Fixture numbers for the learning tests (issue 11): F tails (scipy), weighted MLEs (numpy).

Run: python3 tools/make_learning_fixtures.py  -> tests/fixtures/f_tail.json, tests/fixtures/mle_*.json
Tests never run python; they read these files.
"""
import json
import numpy as np
from scipy import stats

out = []
for nu1 in [1, 2, 3, 5, 8, 16, 32]:
    for nu2 in [0.5, 1.0, 2.7, 7.0, 29.5, 100.0, 1234.5, 19999.0, 1e6]:
        for f in [1e-3, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 100.0, 1e4]:
            p = float(stats.f.sf(f, nu1, nu2))
            lp = float(stats.f.logsf(f, nu1, nu2))
            if p == 0.0 and not np.isfinite(lp):
                continue
            out.append({"nu1": nu1, "nu2": nu2, "f": f, "sf": p, "logsf": lp})
isf = []
for nu1 in [1, 3, 8, 16, 32]:
    for nu2 in [1.5, 10.0, 97.3, 5000.0]:
        for p in [1e-2, 1e-3, 1e-6]:
            isf.append({"nu1": nu1, "nu2": nu2, "p": p, "f": float(stats.f.isf(p, nu1, nu2))})
with open("tests/fixtures/f_tail.json", "w") as fh:
    json.dump({"sf": out, "isf": isf}, fh)

# Awkward-unit streams for the exactness floor: the MLE (mean, biased covariance) of rows the
# tests regenerate themselves with the same PRNG would need the PRNG here; instead the rows are
# stored with their MLE. Axis scales 1e-2..1e3, strong correlations.
rs = np.random.default_rng(11)
for d in [3, 8, 16, 32]:
    N = 50 * d
    scales = np.logspace(-2, 3, d)
    A = rs.standard_normal((d, d))
    corr = 0.9 * np.ones((d, d)) + 0.1 * np.eye(d)  # strong common correlation
    C = np.linalg.cholesky(corr)
    R = C @ (np.eye(d) + 0.3 * np.tril(A, -1))
    cov = np.diag(scales) @ (R @ R.T) @ np.diag(scales)
    mean = scales * rs.standard_normal(d) * 5 + 1e3 * (np.arange(d) % 2)
    X = rs.multivariate_normal(mean, cov, size=N)
    mu = X.mean(axis=0)
    S = np.cov(X.T, bias=True)
    json.dump({"d": d, "n": N, "rows": X.ravel().tolist(), "mean": mu.tolist(),
               "cov": S.tolist(), "true_mean": mean.tolist(), "true_cov": cov.tolist()},
              open(f"tests/fixtures/mle_awkward_d{d}.json", "w"))

# Exponentially weighted MLE (weights lam^(N-1-i)) of a short stream, for the forgetting test.
d, N, H = 3, 500, 100.0
lam = 1 - 1 / H
X = rs.standard_normal((N, d)) @ np.array([[2, 0, 0], [1, 0.5, 0], [-1, 0.3, 3]]).T + [5, -2, 0.1]
w = lam ** np.arange(N - 1, -1, -1)
mu = (w[:, None] * X).sum(0) / w.sum()
Xc = X - mu
S = (w[:, None, None] * Xc[:, :, None] * Xc[:, None, :]).sum(0) / w.sum()
json.dump({"d": d, "n": N, "horizon": H, "rows": X.ravel().tolist(), "mean": mu.tolist(),
           "cov": S.tolist(), "n_eff": float(w.sum() ** 2 / (w ** 2).sum())},
          open("tests/fixtures/mle_forgetting_d3.json", "w"))
print("ok", len(out), len(isf))
