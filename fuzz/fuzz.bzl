"""libFuzzer harnesses that also replay their seed corpus as a test in every build."""

def dpfleet_fuzz_target(name, srcs, deps = []):
    """Defines the harness `name` and the test `name`_corpus_test.

    Under --config=fuzz, `name` is a libFuzzer binary with ASan and UBSan. In every other build it
    links //fuzz:replay_main instead, which runs the harness once on each file it is given.
    `name`_corpus_test replays fuzz/corpus/`name`/ (the seeds and every crasher found) through
    the harness, so a fixed bug stays fixed in the plain test run.
    """
    native.cc_binary(
        name = name,
        testonly = True,
        srcs = srcs,
        deps = deps + select({
            "//fuzz:fuzzing": [],
            "//conditions:default": ["//fuzz:replay_main"],
        }),
        linkopts = select({
            "//fuzz:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["fuzz_target"],
    )
    native.cc_test(
        name = name + "_corpus_test",
        srcs = srcs,
        deps = deps + ["//fuzz:replay_main"],
        data = native.glob(["corpus/" + name + "/*"]),
        args = ["fuzz/corpus/" + name],
    )
