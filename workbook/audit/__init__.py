"""A timing side-channel audit of a shared prefix cache (lesson 10): who else is in the cache?

- `target`: a deployment of our engine (`Deployment.send`), its isolation (global, per-org, per-user) and mitigations.
- `procedure`: the audit: hit and miss probes with fresh random prefixes, shuffled, warm-up dropped; a verdict per pairing.
- `stats`: Mann-Whitney's test, the ROC curve and its AUC, the power of an audit and how many probes it needs.
- `attacks`: what an attacker does with it: guess which document a victim pasted, extract a prompt page by page.
"""

from .attacks import extract_pages, guess_document
from .procedure import PAIRINGS, Samples, Verdict, audit_sharing, collect
from .stats import ALPHA, Comparison, behind_delay, compare, fewest_probes, power_curve, probes_needed
from .target import ISOLATIONS, Deployment, Mitigations, Party

__all__ = ["ALPHA", "ISOLATIONS", "PAIRINGS", "Comparison", "Deployment", "Mitigations", "Party", "Samples", "Verdict",
           "audit_sharing", "behind_delay", "collect", "compare", "extract_pages", "fewest_probes", "guess_document",
           "power_curve", "probes_needed"]
