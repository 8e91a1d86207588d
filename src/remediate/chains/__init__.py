"""Chains: several playbooks run in sequence as one remediation, each step through the gate.

    conditions  the condition language (tokenizer, parser, evaluator, fact registry)
    facts       what conditions observe: memory, swap, disks, forecasts, earlier steps
    records     saved state of runs and steps (chain_runs, chain_steps), sweep, resume claim
    executor    ChainRunner: pre-flight, run, resume, rollback, dry run
    metrics     chain metric families derived from the store
    cli         `remediate chain run|resume|list|status`

Nothing heavy is imported here, so `remediate.config.models` can validate conditions.
"""
