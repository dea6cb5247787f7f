# Usage: python3 bench/tools/pendulum_optimal.py (numpy; ~1 min). The reference level quoted in
# bench/results/adapt-Pendulum-v1.json and the README: how good any controller can be on the
# nominal and on the perturbed pendulum of launch/adapt_pendulum.yaml.
# Optimal finite-horizon (200-step) Pendulum-v1 return by value iteration on a grid (no action delay:
# an upper bound on what any controller attains with the delay), nominal vs perturbed physics.
import numpy as np, sys
def dp(mass_scale, gain, nth=241, nv=201, na=21, H=200):
    g, m, l, dt = 10.0, 1.0*mass_scale, 1.0, 0.05
    th = np.linspace(-np.pi, np.pi, nth, endpoint=False); dth = th[1]-th[0]
    v = np.linspace(-8, 8, nv); dv = v[1]-v[0]
    U = np.linspace(-2, 2, na)
    TH, V = np.meshgrid(th, v, indexing='ij')
    V_next = np.zeros((nth, nv))
    # precompute transitions per action
    trans = []
    for u in U:
        nv_ = np.clip(V + (3*g/(2*l)*np.sin(TH) + 3/(m*l*l)*u*gain)*dt, -8, 8)
        nth_ = TH + nv_*dt
        cost = ((TH+np.pi) % (2*np.pi) - np.pi)**2 + 0.1*V**2 + 0.001*u*u
        fi = ((nth_ + np.pi) % (2*np.pi)) / dth; i0 = np.floor(fi).astype(int); wi = fi - i0; i0 %= nth; i1 = (i0+1) % nth
        fj = (nv_ + 8) / dv; j0 = np.clip(np.floor(fj).astype(int), 0, nv-2); wj = np.clip(fj - j0, 0, 1); j1 = j0+1
        trans.append((cost, i0, i1, wi, j0, j1, wj))
    for t in range(H):
        best = None
        for (cost, i0, i1, wi, j0, j1, wj) in trans:
            q = -cost + (1-wi)*(1-wj)*V_next[i0, j0] + wi*(1-wj)*V_next[i1, j0] + (1-wi)*wj*V_next[i0, j1] + wi*wj*V_next[i1, j1]
            best = q if best is None else np.maximum(best, q)
        V_next = best
    mask = np.abs(v) <= 1
    return V_next[:, mask].mean(), V_next[:, mask].min()
for name, ms, gn in [('nominal', 1.0, 1.0), ('perturbed m1.3 g0.8', 1.3, 0.8)]:
    mean, worst = dp(ms, gn)
    print(f'{name}: optimal 200-step return, mean over uniform starts {mean:.1f}, worst start {worst:.1f}', flush=True)
