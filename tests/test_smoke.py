"""A first real container: run, output, exit status, nothing left behind."""


def test_run_echo_and_exit_code(rt, no_leaks):
    b = rt.bundle(["sh", "-c", "echo hello; exit 3"])
    r = rt.run("run", "--bundle", b, rt.new_id())
    assert r.stdout == "hello\n"
    assert r.returncode == 3
