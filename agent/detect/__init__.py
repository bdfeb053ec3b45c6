"""Detection: policy, behavioural, baseline and process-value detectors -> findings.

    from otsentry.agent.detect import Engine, DetectConfig, detect_file
    engine, findings = detect_file("plant.pcap")                 # no baseline
    engine, findings = detect_file("plant.pcap", learn_ns=600 * 10**9)  # learn 10 min
    text = dump_baseline(engine.baseline)                        # the learned baseline

The engine is a pipeline sink (see :mod:`otsentry.agent.pipeline`); detectors
are grouped in families registered in :mod:`._registry`; the catalogue
(:mod:`.catalogue`) lists every detector with its severity, ATT&CK ids and
knobs.  Sans-I/O: time comes from the events.
"""

from otsentry.agent.detect._baseline import Baseline, Cycle, Envelope
from otsentry.agent.detect._baseline_file import (
    FORMAT,
    VERSION,
    baseline_from_dict,
    dump_baseline,
    load_baseline,
)
from otsentry.agent.detect._config import (
    DetectConfig,
    L2Config,
    Rule,
    config_from_dict,
    load_config,
    parse_duration,
)
from otsentry.agent.detect._engine import Engine
from otsentry.agent.detect._entry import TECHNIQUES, Entry, Knob
from otsentry.agent.detect._learner import Learner
from otsentry.agent.detect._pcap import pcap_slice
from otsentry.agent.detect._registry import FAMILIES, catalogue
from otsentry.agent.detect._runner import RING_FRAMES, detect_file, detect_frames, with_inventory

__all__ = [
    "Baseline", "Cycle", "Envelope", "FORMAT", "VERSION", "baseline_from_dict", "dump_baseline",
    "load_baseline", "DetectConfig", "L2Config", "Rule", "config_from_dict", "load_config",
    "parse_duration", "Engine", "TECHNIQUES", "Entry", "Knob", "Learner", "pcap_slice",
    "FAMILIES", "catalogue", "RING_FRAMES", "detect_file", "detect_frames", "with_inventory",
]
