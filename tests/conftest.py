import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=int(os.environ.get("AUNET_HYPOTHESIS_EXAMPLES", "120")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")

# The longest files first (measured: 2-4.5 minutes each on 2 cores). `make test` runs pytest-xdist
# with whole files per worker, handed out in collection order; a long file collected last would
# run alone at the end while the other worker idles.
LONG_FIRST = ("test_sweep_faults.py", "test_sweep.py", "test_training_resume.py", "test_training_distributed.py",
              "test_kill_matrix.py", "test_sweep_processes.py", "test_training.py", "test_split_specs.py",
              "test_multilingual_study.py", "test_split_properties.py", "test_check_fuzz.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))  # stable within a file
