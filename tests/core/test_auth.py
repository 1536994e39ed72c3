from soc_core.auth import api_key_id, digest, hash_password, new_api_key, same_digest, verify_password


def test_passwords() -> None:
    stored = hash_password("a long enough password")
    assert verify_password(stored, "a long enough password")
    assert not verify_password(stored, "wrong password here")
    assert not verify_password(stored, "")
    assert not verify_password(stored, "   ")
    assert not verify_password(None, "a long enough password")
    assert not verify_password("not-a-hash", "whatever")


def test_api_keys_are_stored_as_digests() -> None:
    key_id, key = new_api_key()
    assert api_key_id(key) == key_id
    assert same_digest(key, digest(key))
    assert not same_digest(key + "x", digest(key))
    assert api_key_id("Bearer abc") is None
    assert api_key_id("cgk_") is None
