# Exercise 8.1: (experiment): what does one switch change in the output? - solution (loaded by tools/run_course.py for the book and CI)
def switch_effect(switches):
    full_model = models[FULL]
    variant = build_lstmcor(input_shape=ds.shape, **switches)
    names = {layer.name for layer in full_model.layers}
    for layer in variant.layers:
        if layer.name in names and layer.weights:
            layer.set_weights(full_model.get_layer(layer.name).get_weights())
    flows = [np.asarray(model.predict_on_batch(pair_81)[1])[0] for model in (full_model, variant)]
    return {"removed": full_model.count_params() - variant.count_params(),
            "flow_full": flows[0], "flow_variant": flows[1], "full": full_model}


effect_81 = switch_effect({"field_se": False})
ratio = np.abs(effect_81["flow_full"]).mean(axis=(0, 1)) / np.abs(effect_81["flow_variant"]).mean(axis=(0, 1))
print(f"[{PRESET}] shipped LSTM-COR weights shared by both, pair {m81} -> {f81}: switching the field SE off "
      f"removes {effect_81['removed']} weights;")
print(f"  mean |field| with / without the SE gate: rows {ratio[0]:.3f}, columns {ratio[1]:.3f}")
