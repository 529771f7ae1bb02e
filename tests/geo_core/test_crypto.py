from geo_core import crypto


def test_pbkdf2_sm3_roundtrip_and_parameters():
    encoded = crypto.hash_password("Secr3t!pw", 1000)
    scheme, iterations, salt, digest = encoded.split("$")
    assert scheme == "pbkdf2_sm3" and iterations == "1000"
    assert crypto.verify_password("Secr3t!pw", encoded)
    assert not crypto.verify_password("secr3t!pw", encoded)
    assert crypto.hash_password("Secr3t!pw", 1000) != encoded  # salted
    assert crypto.needs_rehash(encoded, 2000) and not crypto.needs_rehash(encoded, 1000)
    assert not crypto.verify_password("x", "md5$garbage") and not crypto.verify_password("x", None)


def test_sm3_matches_the_standard_test_vector():
    # GB/T 32905-2016, example 1: SM3("abc")
    assert crypto.sm3_hex("abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_password_policy():
    assert crypto.check_password_policy("Gm@2026demo") == []
    assert len(crypto.check_password_policy("short")) >= 2
