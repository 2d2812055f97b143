"""Image builds from Dockerfiles/Containerfiles.

What is here so far is everything a builder needs that is not running containers:

    df   = dockerfile.parser.parse(text, filename)           # nodes with line numbers
    plan = stages.plan_build(df, build_args=..., target=..., target_platform=...)
    ctx  = context.BuildContext.from_directory(dir, dockerfile_name)   # or from_tar(stdin)
    for stage in plan.needed:                                # only what --target needs
        ev = evaluate.StageEvaluator(plan, stage, base_config)  # scratch: scratch_config()
        for ins in [*ev.triggers, *stage.instructions]:      # base image ONBUILD first
            ins = ev.apply(ins)        # metadata applied to ev.config; COPY/ADD expanded
            # RUN: run ins.command.resolve(ev.shell()) with env ev.run_environment()
            # COPY/ADD: ctx.plan_copy(ins.sources, ins.dest, workdir=ev.config WorkingDir,
            #           parents=ins.parents, excludes=ins.excludes); cache key part:
            #           ctx.content_hash(ins.sources, ins.excludes)

Errors are DockerfileSyntaxError / BuildError (portside.errors), one line each,
`FILE:LINE: KEYWORD: message` when an instruction is at fault.
"""
