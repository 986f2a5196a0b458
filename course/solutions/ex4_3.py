# Exercise 4.3: assemble LSTM-COR yourself - solution (loaded by tools/run_course.py for the book and CI)
def my_lstmcor(input_shape=(32, 32)):
    moving = keras.Input((*input_shape, 1), name="moving")
    fixed = keras.Input((*input_shape, 1), name="fixed")
    x = keras.layers.Concatenate()([moving, fixed])
    x = unet_features(x, ENC_FEATURES, LSTMCOR_DEC_FEATURES, se_skips=True, funnel=True, se_ratio=8)
    x = conv_block(x, 16, "sequence")                   # n_seq = 16 channels
    x = ChannelsToSequence()(x)                         # Eq. 6: [B, 16, H, W, 1]
    x = PeepholeConvLSTM2D(4, 3)(x)                     # Eq. 12-16: [B, 16, H, W, 4]
    x = SequenceToChannels()(x)                         # [B, H, W, 64]
    x = SqueezeExcitation(8)(x)                         # head SE
    x = FlowDepthwiseConv2D(3, padding="same")(x)       # Eq. 17
    flow = flow_field(x)                                # Eq. 18
    flow = SqueezeExcitation(8)(flow)                   # SE on the field
    moved = SpatialTransformer()([moving, flow])        # Eq. 19-20
    return keras.Model([moving, fixed], [moved, flow])
