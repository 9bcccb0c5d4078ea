"""Which s3:// sources and output locations a tenant may name (TINGXIE_TENANT_SOURCES/OUTPUTS),
and the form of http(s) links: the policy the door and the worker both apply."""
from __future__ import annotations

import pytest

from core.errors import BadOptionError, NotFoundError
from core.settings import Settings, SettingsError
from core.sources import check_output, check_source, display_name

SOURCES = {"acme": ("s3://calls/acme/", "s3://shared-archive/"), "beta": ("s3://calls/beta/",)}


def test_the_setting_reads_tenants_and_folders_and_writes_them_back():
    settings = Settings.from_env({"TINGXIE_TENANT_SOURCES": "acme=s3://calls/acme,s3://shared-archive/;beta=s3://calls/beta/",
                                  "TINGXIE_TENANT_OUTPUTS": "acme=s3://results/acme/"})
    assert settings.tenant_sources == SOURCES
    assert settings.tenant_outputs == {"acme": ("s3://results/acme/",)}
    assert Settings.from_env(settings.to_env()).tenant_sources == SOURCES


@pytest.mark.parametrize("text", ["acme", "acme=", "acme=http://calls/x", "Acme!=s3://calls/x", "acme=s3://x/y"])
def test_a_bad_setting_names_itself(text):
    with pytest.raises(SettingsError, match="TINGXIE_TENANT_SOURCES"):
        Settings.from_env({"TINGXIE_TENANT_SOURCES": text})


def test_a_tenant_reads_within_its_folders_only():
    check_source("s3://calls/acme/2024/0412.wav", "acme", SOURCES)
    check_source("s3://shared-archive/any/thing.mp3", "acme", SOURCES)
    for url, tenant in [("s3://calls/beta/0412.wav", "acme"),  # another tenant's folder
                        ("s3://calls/acme-old/0412.wav", "acme"),  # a folder whose name starts the same
                        ("s3://calls/0412.wav", "acme"),  # above the folder
                        ("s3://foreign-bucket/acme/0412.wav", "acme"),  # a bucket nobody listed
                        ("s3://calls/acme/0412.wav", "beta"),
                        ("s3://calls/acme/0412.wav", "gamma")]:  # a tenant with nothing listed
        with pytest.raises(NotFoundError) as refused:
            check_source(url, tenant, SOURCES)
        assert refused.value.status == 404 and refused.value.message == f"no source {url}"


@pytest.mark.parametrize("url", ["s3://calls/acme/../beta/x.wav", "s3://calls/acme/./x.wav", "s3://calls/acme//x.wav",
                                 "s3://calls/acme/", "s3://Calls/acme/x.wav", "s3://calls/acme/x\n.wav"])
def test_keys_that_could_step_out_of_a_folder_are_refused(url):
    with pytest.raises(BadOptionError) as refused:
        check_source(url, "acme", SOURCES)
    assert refused.value.code == "bad_source_url"


@pytest.mark.parametrize("url", ["ftp://example.com/a.wav", "file:///etc/passwd", "gopher://example.com/",
                                 "http:///nohost", "https://user:pw@example.com/a.wav", "http://example.com:99999/",
                                 "x" * 3000, ""])
def test_links_of_other_kinds_are_refused_at_the_door(url):
    with pytest.raises(BadOptionError) as refused:
        check_source(url, "acme", SOURCES)
    assert refused.value.code == "bad_source_url"


def test_outputs_are_folders_of_the_tenant():
    outputs = {"acme": ("s3://results/acme/",)}
    assert check_output("s3://results/acme/batch-7", "acme", outputs).key == "acme/batch-7/"
    assert check_output("s3://results/acme/", "acme", outputs).key == "acme/"
    for url, tenant in [("s3://results/", "acme"), ("s3://results/acme-x/", "acme"), ("s3://other/acme/", "acme"),
                        ("s3://results/acme/", "beta")]:
        with pytest.raises(NotFoundError):
            check_output(url, tenant, outputs)


def test_a_link_is_named_after_its_last_segment():
    assert display_name("https://example.com/calls/0412%20am.wav?sig=x") == "0412 am.wav"
    assert display_name("s3://calls/acme/0412.wav") == "0412.wav"
