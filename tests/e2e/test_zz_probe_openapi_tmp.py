import requests
from tests.live_server import HoardServer

def test_probe(new_postgres_database, tmp_path):
    with HoardServer(var_dir=tmp_path, database_url=new_postgres_database(), workers=1, threads=2) as s:
        t = s.create_tenant("probe")
        h = {"Authorization": f"Bearer {t.key}"}
        for url in [
            "/v1/artifacts?created_after=0001-01-01T00:00:00%2B01:00",
            "/v1/artifacts?created_before=9999-12-31T23:59:59-01:00",
            "/v1/sessions?created_after=0001-01-01T00:00:00%2B01:00",
            "/v1/artifacts?filename=a%00b",
            "/v1/artifacts?session_id=a%00b",
            "/v1/artifacts?metadata.k=a%00b",
            "/v1/artifacts?created_after=2020-01-01T00:00:00%00",
            "/v1/sessions?after=WyIyMDIwLTAxLTAxIiwiYQBiIl0",
        ]:
            r = requests.get(s.url + url, headers=h)
            print(url, r.status_code, r.text[:150])
        r = requests.post(s.url + "/v1/artifacts", headers=h, json={"filename": "a", "content": "aGk=", "metadata": {"k": "a\u0000b"}})
        print("meta NUL", r.status_code, r.text[:150])
        r = requests.post(s.url + "/v1/artifacts", headers=h, json={"filename": "a", "content": "aGk=", "session_id": "s", "agent_id": "x"})
        print("ok", r.status_code)
        r = requests.post(s.url + "/v1/sessions/a%00b/seal", headers=h)
        print("seal NUL", r.status_code, r.text[:150])
        r = requests.post(s.url + "/v8/artifacts", headers=h, json={"hashes": ["a\u0000"]})
        print("query NUL", r.status_code, r.text[:150])
        r = requests.get(s.url + "/v8/artifacts/status?slug=a%00", headers=h)
        print("slug NUL", r.status_code, r.text[:150])
        r = requests.get(s.url + "/dl/lnk_a%00b", headers=h)
        print("dl NUL", r.status_code, r.text[:150])
        r = requests.get(s.url + "/v1/artifacts/art_a%00b", headers=h)
        print("art NUL", r.status_code, r.text[:150])
        r = requests.post(s.url + "/v1/artifacts", headers=h, json={"filename": "a", "content": "aGk=", "content_type": "x\u00a0y"})
        print("ct", r.status_code, r.text[:150])
        r = requests.post(s.url + "/v1/artifacts", headers=h, json={"filename": "a\ud800", "content": "aGk="})
        print("surrogate", r.status_code, r.text[:150])
        r = requests.post(s.url + "/v1/artifacts", headers={**h, "Content-Type": "application/json"}, data=b'{"filename": "a\\ud800", "content": "aGk="}')
        print("surrogate2", r.status_code, r.text[:150])
        r = requests.post(s.url + "/v1/artifacts", headers={**h, "Idempotency-Key": "é\u00ff"}, json={"filename": "a", "content": "aGk="})
        print("idem latin1", r.status_code, r.text[:150])
