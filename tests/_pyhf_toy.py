"""A two-bin pyhf counting workspace shared by the surrogate tests (signal 5, 3 over background 50, 30)."""


def toy_spec(signal=(5.0, 3.0), background=(50.0, 30.0), uncertainty=(5.0, 4.0), observed=(52.0, 29.0)) -> dict:
    import pyhf

    model = pyhf.simplemodels.uncorrelated_background(signal=list(signal), bkg=list(background), bkg_uncertainty=list(uncertainty))
    return {
        "channels": [{"name": "SR", "samples": model.spec["channels"][0]["samples"]}],
        "observations": [{"name": "SR", "data": list(observed)}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
