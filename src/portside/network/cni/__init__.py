"""CNI: network configs, plugin invocation per the CNI spec, and the result cache."""
