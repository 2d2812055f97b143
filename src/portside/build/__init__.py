"""Image builds from Dockerfiles/Containerfiles (`portside build`).

The whole build, as the CLI runs it:

    from portside.build.builder import BuildOptions, build
    record = build(engine, BuildOptions(context=dir, dockerfile_text=text, tags=[...]))

Modules, one responsibility each, bottom up:

    dockerfile/parser.py        text -> nodes (directives, continuations, heredocs, lines)
    dockerfile/instructions.py  nodes -> typed instructions, flags checked
    dockerfile/expand.py        $VAR / ${VAR:-w} substitution
    stages.py                   the plan: stages, global ARGs, pruned to --target
    evaluate.py                 what each instruction does to the image config
    context.py                  the build context, ignore files, COPY selection, content hashes
    cache.py                    the step cache (SQLite under ROOT/build/) and context file digests
    workspace.py                a step's snapshot over the parent's layers; its diff -> a layer
    runner.py                   RUN in a container through the engine's OCI runtime
    steps.py                    COPY/ADD into a build root (chown, chmod, tars, URLs)
    progress.py                 STEP n/m, --> Using cache, COMMIT, the image ID
    output.py                   --output archives and file trees
    builder.py                  stages in order, steps, cache lookups, the image commit

Errors are DockerfileSyntaxError / BuildError / BuildStepFailed (portside.errors), one
line each, `FILE:LINE: KEYWORD: message` when an instruction is at fault.
"""
