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


def two_region_spec(backgrounds=(6.0, 55.0), uncertainties=(1.5, 6.0), observed=(7.0, 52.0)) -> dict:
    """A background-only workspace with two one-bin signal regions SR_A, SR_B (6 and 55 events, as in issue 24)."""
    import pyhf

    channels = []
    for name, b, u in zip(("SR_A", "SR_B"), backgrounds, uncertainties):
        model = pyhf.simplemodels.uncorrelated_background(signal=[0.0], bkg=[b], bkg_uncertainty=[u])
        bkg = next(s for s in model.spec["channels"][0]["samples"] if s["name"] == "background")
        bkg["modifiers"][0]["name"] = f"uncrt_{name}"
        channels.append({"name": name, "samples": [bkg]})
    return {
        "channels": channels,
        "observations": [{"name": n, "data": [o]} for n, o in zip(("SR_A", "SR_B"), observed)],
        "measurements": [{"name": "meas", "config": {"poi": "mu_SIG", "parameters": []}}],
        "version": "1.0.0",
    }
