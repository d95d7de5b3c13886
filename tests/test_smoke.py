import implementations


def test_names():
    assert "bspline" in implementations.names()
