"""Image builds from Dockerfiles/Containerfiles.

What is here so far is everything a builder needs that does not run containers:

    path = context.find_dockerfile(dir, dash_f)               # Containerfile, Dockerfile
    df   = dockerfile.parser.parse(text, filename)            # nodes with line numbers
    plan = stages.plan_build(df, build_args=..., target=..., target_platform=...)
    plan.unused_build_args()                                  # for docker's warning
    ctx  = context.BuildContext.from_directory(dir, path.name)   # or from_tar(stdin, tmp)
    for stage in plan.needed:                                 # only what --target needs
        base = evaluate.scratch_config() if stage.base == "scratch" else <image config>
        # (stage.base_stage is not None: the config of that stage's result)
        ev = evaluate.StageEvaluator(plan, stage, base)
        for ins in [*ev.triggers, *stage.instructions]:       # base image ONBUILD first
            ins = ev.apply(ins)       # metadata applied to ev.config; COPY/ADD expanded
            # RUN: instructions.run_command(ins, ev.shell()) with env ev.run_environment()
            # COPY/ADD: ctx.plan_copy(ins.sources, ins.dest,
            #               workdir=ev.config.get("WorkingDir") or "/",
            #               parents=ins.parents, excludes=ins.excludes)
            #           cache key part: ctx.content_hash(ins.sources, ins.excludes)
            #           ADD: context.add_source_kind(src), context.tar_compression(path)
            #           COPY --from: BuildContext(<that stage's rootfs>).plan_copy(...)
            # history: evaluate.created_by(ins, stage_args=ev.args, source_ref=...)

Errors are DockerfileSyntaxError / BuildError (portside.errors), one line each,
`FILE:LINE: KEYWORD: message` when an instruction is at fault (Instruction.error()).
"""
